"""A call's person is shown by name: the desk user who answered it, or the provider's name
for whoever did, said not to be a desk user, on the boards (page and live push) and in
history. Calls come in through Stringee's real event webhook (demo mode, no token)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.live.render import render_changes
from desk.models import Call
from tests.conftest import add_user, base_config, login


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """A demo desk (Stringee events taken without a token) on a fresh database."""
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_DEMO=True,
                                 DESK_SIMULATE="0"))
    upgrade_database(app)
    yield app
    db.dispose()


def stringee_call(client: FlaskClient, call_id: str, app_user: str, status: str = "answered",
                  **extra: Any) -> None:
    """A phone call to a Stringee app user (the agent), as Stringee reports it."""
    for step in ("created", "ringing", status):
        response = client.post("/webhooks/stringee/events", json={
            "call_id": call_id, "call_status": step, "project_id": 25,
            "timestamp_ms": 1_763_802_000_000, "type": "stringee_call",
            "from": {"number": "84899199866", "alias": "84899199866", "type": "external"},
            "to": {"number": app_user, "alias": app_user, "type": "internal"},
            **(extra if step == status else {}),
        })
        assert response.status_code == 200, response.get_data(as_text=True)


def agent_cell(page: str, call_id: int) -> str:
    row = page[page.index(f'id="call-{call_id}"'):]
    return html.unescape(re.search(r'<span class="call__agent">(.*?)</span>\s*<time', row,
                                   re.S).group(1))  # type: ignore[union-attr]


def call_id_of(app: Flask, provider_call_id: str) -> int:
    with app.app_context():
        return db.session.scalars(
            select(Call.id).where(Call.provider_call_id == provider_call_id)).one()


def test_a_stringee_agent_is_shown_by_name_and_a_stranger_as_not_a_desk_user(
    app: Flask, client: FlaskClient,
) -> None:
    add_user(app, "sue", role="supervisor")
    add_user(app, "linh", stringee_user_id="hotline-1")
    stringee_call(client, "call-vn-1-A", "hotline-1")
    stringee_call(client, "call-vn-1-B", "hotline-2")
    mine, stranger = call_id_of(app, "call-vn-1-A"), call_id_of(app, "call-vn-1-B")
    login(client, "sue")
    board = client.get("/supervisor").get_data(as_text=True)
    assert agent_cell(board, mine) == "linh"
    assert agent_cell(board, stranger) == "hotline-2 (not a desk user)"

    # The same words in the rows pushed to open boards.
    fragments = "".join(h for _, h in render_changes(app, {"calls": {mine, stranger}},
                                                     {"supervisor"}))
    assert agent_cell(fragments, mine) == "linh"
    assert agent_cell(fragments, stranger) == "hotline-2 (not a desk user)"


def test_a_desk_user_given_the_id_later_is_shown_on_the_calls_they_took(
    app: Flask, client: FlaskClient,
) -> None:
    add_user(app, "sue", role="supervisor")
    stringee_call(client, "call-vn-1-C", "hotline-2", status="ended",
                  endCallCause="NORMAL_CLEARING", duration=60, answerDuration=55)
    call = call_id_of(app, "call-vn-1-C")
    login(client, "sue")
    history = html.unescape(client.get("/history").get_data(as_text=True))
    assert "<td>hotline-2 (not a desk user)</td>" in history

    add_user(app, "minh", stringee_user_id="hotline-2")
    with app.app_context():
        assert db.session.get(Call, call).agent_id is None  # nothing was rewritten
    history = html.unescape(client.get("/history").get_data(as_text=True))
    assert "<td>minh</td>" in history and "not a desk user" not in history
    assert agent_cell(client.get("/supervisor").get_data(as_text=True), call) == "minh"

