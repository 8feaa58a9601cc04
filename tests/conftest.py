"""Shared fixtures: an app on a fresh database per test, its client and CLI runner, users.

PostgreSQL and Redis are the real servers (``DESK_TEST_POSTGRES_URL``,
``DESK_TEST_REDIS_URL``); when one is unreachable its tests are skipped on a developer's
machine and fail in CI (``CI=true``), so a missing service never passes silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from desk import create_app
from desk.cli import alembic_config
from desk.extensions import db
from desk.models import User

PASSWORD = "correct-horse-battery"
PLACETEL_AUTH = ("placetel", "s3cret-pt")


def base_config(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DESK_DEMO": False,
        "DESK_SECRET_KEY": "test-secret",
        "DESK_DATABASE_URL": database_url,
        "DESK_PLACETEL_USER": PLACETEL_AUTH[0],
        "DESK_PLACETEL_PASSWORD": PLACETEL_AUTH[1],
        "DESK_COOKIE_SECURE": False,
        **extra,
    }


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path / 'desk.sqlite3'}"
    # Migrate before the app exists: the process's live hub, started by an earlier test,
    # catches up through the current app's engine every second; pointed at a database
    # being created, its connection made the migration fail with "database is locked".
    command.upgrade(alembic_config(url), "head")
    app = create_app(base_config(url))
    yield app
    db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def add_user(
    app: Flask, name: str, role: str = "agent", extension: str | None = None,
    sip_peer: str | None = None, presence: str = "available",
    stringee_user_id: str | None = None,
) -> int:
    with app.app_context():
        user = User(name=name, role=role, extension=extension, sip_peer=sip_peer,
                    presence=presence, stringee_user_id=stringee_user_id)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        return user.id


@pytest.fixture
def users(app: Flask) -> dict[str, int]:
    return {
        "ann": add_user(app, "ann", extension="101", sip_peer="777ann@fpbx.de"),
        "bob": add_user(app, "bob", extension="102", sip_peer="777bob@fpbx.de"),
        "sue": add_user(app, "sue", role="supervisor", extension="100"),
    }


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the CSRF token of the page landed on."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token},
        follow_redirects=True,
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return csrf_from(response.get_data(as_text=True))


# -- real services ---------------------------------------------------------------------------
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "DESK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """The run's one Playwright: every browser of the run is launched from it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """One headless Chromium for the whole run (each test opens its own context)."""
    from tests.browser import chromium

    with chromium(playwright) as browser:
        yield browser


@pytest.fixture
def viewport() -> dict[str, int]:
    """The browser window size; a test module overrides this fixture for a larger screen."""
    return {"width": 1280, "height": 800}


@pytest.fixture
def page(browser: Any, viewport: dict[str, int]) -> Iterator[Any]:
    """A fresh browser context and page; fails the test on any JavaScript error."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


CHROMIUM_FIXTURES = frozenset({"browser", "page"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when a test drives Chromium without the ``browser`` marker, so
    ``-m "not browser"`` leaves out every test that needs Chromium. ``fixturenames`` is the
    closure, so a test reaching ``page`` through another fixture counts too."""
    unmarked = [
        item.nodeid for item in items
        if CHROMIUM_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("browser") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "These tests use the Chromium fixtures (page, browser) without the browser "
            "marker; add `pytestmark = pytest.mark.browser` to the module or "
            "`@pytest.mark.browser` to the test:\n  " + "\n  ".join(unmarked)
        )


def require(service: str, error: Exception | None) -> None:
    """Skip locally, fail in CI, when a real service the test needs is not there."""
    if error is None:
        return
    message = f"{service} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message + " (CI must have it; see README, 'Tests')")
    pytest.skip(message)
