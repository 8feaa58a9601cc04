"""A desk wired to a stand-in Teleforge, for tests that dial: the fixtures ``pbx`` and
``app``, and ``token`` for a person's API header. Import them into a test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from tests.conftest import base_config
from tests.teleforge_standin import TeleforgeStandIn


@pytest.fixture
def pbx() -> Iterator[TeleforgeStandIn]:
    with TeleforgeStandIn() as standin:
        yield standin


@pytest.fixture
def app(tmp_path: Path, pbx: TeleforgeStandIn) -> Iterator[Flask]:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_TELEFORGE_URL=pbx.url, DESK_PROVIDER_TIMEOUT="2"))
    upgrade_database(app)
    yield app
    db.dispose()


def token(runner: FlaskCliRunner, name: str) -> dict[str, str]:
    result = runner.invoke(args=["users", "token", name])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip()}"}
