"""The translation catalogues in desk/translations: extract, update, compile, check.

    python scripts/i18n.py extract   # marked strings -> messages.pot (templates, Python), js.pot
    python scripts/i18n.py update    # extract, then merge into each language's .po
    python scripts/i18n.py compile   # each .po -> the .mo the desk reads (committed)
    python scripts/i18n.py check     # what a catalogue lacks or a .mo lags; exit 1 if any

``make i18n-extract``, ``i18n-update`` and ``i18n-compile`` run these; ``tests/test_i18n.py``
runs ``check``. After ``update``, translate every entry that is new (empty) in each
``desk/translations/<language>/LC_MESSAGES/*.po``, then ``compile``.
"""

from __future__ import annotations

import contextlib
import gettext
import io
import sys
import tempfile
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "desk" / "translations"
LANGUAGES = ("de", "vi")  # English is the msgids themselves
DOMAINS = {"messages": "babel.cfg", "js": "js.cfg"}  # domain -> the mapping file it reads
WIDTH = 100  # the catalogues' line width (pybabel's default, 76, would rewrap every entry)


def _pybabel(*args: str) -> None:
    CommandLineInterface().run(["pybabel", "-q", *args])


def extract(into: Path = TRANSLATIONS) -> dict[str, Path]:
    """Every marked string of the sources, one template per domain; returns their paths.
    Read from the repository's root, so the catalogues name sources by relative path."""
    templates = {}
    for domain, mapping in DOMAINS.items():
        pot = into / f"{domain}.pot"
        with contextlib.chdir(ROOT):
            _pybabel("extract", "-w", str(WIDTH), "-F", str(TRANSLATIONS / mapping),
                     "-k", "lazy_gettext", "--add-location=file", "-c", "Translators:",
                     "--sort-output", "--project", "Agent Desk", "--msgid-bugs-address", "",
                     "-o", str(pot), ".")
        templates[domain] = pot
    return templates


def po_path(language: str, domain: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / f"{domain}.po"


def update() -> None:
    for domain, pot in extract().items():
        for language in LANGUAGES:
            verb = "update" if po_path(language, domain).exists() else "init"
            extra = ["--no-fuzzy-matching", "--ignore-obsolete", "--ignore-pot-creation-date"] \
                if verb == "update" else []
            _pybabel(verb, *extra, "-w", str(WIDTH), "-D", domain, "-i", str(pot),
                     "-d", str(TRANSLATIONS), "-l", language)


def compile_all() -> None:
    for domain in DOMAINS:
        _pybabel("compile", "--statistics", "-D", domain, "-d", str(TRANSLATIONS))


def _read(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def _messages(catalog: Catalog) -> dict[object, object]:
    """What gettext would read from the catalogue compiled: its .mo, parsed back."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return dict(gettext.GNUTranslations(buffer)._catalog)  # type: ignore[attr-defined]


def check() -> list[str]:
    """Every way a catalogue falls short of the sources, as sentences; empty when none."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        templates = {domain: _read(pot) for domain, pot in extract(Path(tmp)).items()}
    for domain, template in templates.items():
        wanted = {message.id for message in template if message.id}
        for language in LANGUAGES:
            po = po_path(language, domain)
            name = po.relative_to(ROOT)
            if not po.exists():
                problems.append(f"{name} is missing: run `make i18n-update`, then translate it.")
                continue
            catalog = _read(po, language)
            have = {message.id for message in catalog if message.id}
            for msgid in sorted(wanted - have, key=str):
                problems.append(f"{name} lacks {msgid!r}: run `make i18n-update` and translate it.")
            for msgid in sorted(have - wanted, key=str):
                problems.append(f"{name} still has {msgid!r}, which no source uses any more.")
            for message in catalog:
                if not message.id:
                    continue
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                if not all(strings):
                    problems.append(f"{name}: {message.id!r} is not translated.")
                elif message.fuzzy:
                    problems.append(f"{name}: {message.id!r} is marked fuzzy: check it.")
            for message, errors in catalog.check():
                for error in errors:
                    problems.append(f"{name}: {message.id!r}: {error}")
            mo = po.with_suffix(".mo")
            if not mo.exists():
                problems.append(f"{mo.relative_to(ROOT)} is missing: run `make i18n-compile`.")
            else:
                with mo.open("rb") as handle:
                    compiled = dict(gettext.GNUTranslations(handle)._catalog)  # type: ignore[attr-defined]
                if compiled != _messages(catalog):
                    problems.append(f"{mo.relative_to(ROOT)} is older than its .po: run "
                                    f"`make i18n-compile`.")
    return problems


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "extract":
        extract()
    elif command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        problems = check()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
