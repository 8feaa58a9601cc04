"""Where the desk's templates, static files and migrations are, checked out or installed.

In the repository they stay at the top level (``templates/``, ``static/``, ``migrations/``);
``templates``, ``static`` and ``migrations`` here are relative links to them, so a checkout
or an editable install reads those folders directly. Building a wheel follows the links and
copies the files in as package data (``[tool.setuptools.package-data]``), so an installed
desk finds the same paths inside the package. ``static/vendor`` ships when ``make assets``
has built it before the build.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = (HERE / "templates").resolve()
STATIC = (HERE / "static").resolve()
MIGRATIONS = (HERE / "migrations").resolve()

_CHECKOUT = HERE.parent.parent
INSTANCE: Path | None = (
    _CHECKOUT / "instance" if (_CHECKOUT / "pyproject.toml").is_file() else None
)
"""A checkout keeps its instance folder (the demo database) beside the code; an installed
desk leaves it to Flask (``<prefix>/var/desk-instance``), never inside site-packages."""
