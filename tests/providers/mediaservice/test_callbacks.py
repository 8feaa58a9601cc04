"""Every documented mediaservice callback, sent as the page prints it, through the webhook.

Each fixture in ``fixtures/`` (the OpenAPI page's own samples, see ``fixtures/SOURCES.md``)
is posted byte for byte to ``/webhooks/mediaservice/<callback>`` with a callback signature
the desk verifies, and the call it leaves behind is checked in the database and on the
pages. The documented sequence newCall → callNotify → callAnswered (which carries no
``sessionId`` and an empty ``sessionReferenceId``) → sessionCompleted must end as an
answered call with the same non-zero talk time on every surface.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Alert, Call, Delivery
from desk.web.formatting import duration
from tests.conftest import add_user, base_config, login
from tests.mediaservice_standin import StandIn, key_pair
from tests.providers.mediaservice.samples import load, raw

SESSION = "9bb07660-c747-11ea-afa0-bd07728b88b7"  # every sample's sessionId
DOMAIN = "customer.prod-eu-north-1.iotcomms.io"  # the samples' own domain
CALLER_LEG = "d93f0370-c787-11eb-a47c-c9c4e460ef16"
CALLEE_LEG = "da9cbeb0-c787-11eb-a47c-c9c4e460ef16"
# sessionDuration 46890510 ms (see desk.providers.mediaservice.parse): 46890 whole seconds.
SAMPLE_SESSION_SECONDS = 46890.51


@pytest.fixture(scope="module")
def provider_keys() -> tuple[str, str]:
    return key_pair()


def make_app(tmp_path: Path, provider_public: str, **settings: str) -> Flask:
    (tmp_path / "provider.pub").write_text(provider_public)
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", **{
        "DESK_MEDIASERVICE_URL": "http://127.0.0.1:9", "DESK_MEDIASERVICE_DOMAIN": DOMAIN,
        "DESK_MEDIASERVICE_CALLBACK_KEY_FILE": str(tmp_path / "provider.pub"), **settings,
    }))
    upgrade_database(app)
    # The agent the samples' callee (remotePartyNumber 46890200) is: its SIP user part.
    add_user(app, "ann", extension="101", sip_peer="46890200@pbx.example")
    add_user(app, "sue", role="supervisor", extension="100")
    return app


@pytest.fixture
def app(tmp_path: Path, provider_keys: tuple[str, str]) -> Iterator[Flask]:
    yield make_app(tmp_path, provider_keys[1])
    db.dispose()


class Provider:
    """Posts callbacks signed with the provider's key, as the mediaservice does."""

    def __init__(self, client: FlaskClient, private_key: str) -> None:
        self.client, self.private_key = client, private_key

    def post(self, callback: str, body: bytes | dict[str, Any] | None = None) -> TestResponse:
        """``callback``'s fixture as stored (or ``body``), to its documented path."""
        if body is None:
            body = raw(callback)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = DOMAIN if callback == "alarm" else callback  # alarms go to /<domain>
        now = int(time.time())
        token = jwt.encode({"iss": "mediaservice", "iat": now, "exp": now + 60,
                            "jti": uuid.uuid4().hex},  # fresh: the desk takes each once
                           self.private_key, algorithm="RS256")
        response = self.client.post(f"/webhooks/mediaservice/{path}", data=data,
                                    content_type="application/json",
                                    headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response


@pytest.fixture
def provider(app: Flask, provider_keys: tuple[str, str]) -> Provider:
    return Provider(app.test_client(), provider_keys[0])


def calls(app: Flask) -> list[Call]:
    with app.app_context():
        found = db.session.scalars(select(Call).order_by(Call.id)).all()
        db.session.expunge_all()
        return list(found)


def the_call(app: Flask) -> Call:
    (call,) = calls(app)
    return call


def deliveries(app: Flask) -> list[tuple[str | None, int | None, str]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(  # type: ignore[misc]
            select(Delivery.kind, Delivery.call_id, Delivery.status).order_by(Delivery.id))]


# -- one callback at a time -------------------------------------------------------------


def test_new_call_sample_rings_an_agent_and_sets_the_desk_reference(
    app: Flask, provider: Provider,
) -> None:
    answer = provider.post("newCall").json
    assert answer["action"] == "call" and answer["destAddr"] == "sip:46890200@pbx.example"
    assert answer["sessionReferenceId"] == {"deskCallId": SESSION}
    call = the_call(app)
    assert (call.provider_call_id, call.state, call.direction) == (SESSION, "ringing", "inbound")
    assert (call.from_number, call.to_number) == ("caller", "ivr")
    assert call.provider_facts["caller_display_name"] == "Carl Carlsson"


def test_call_notify_sample_rings_and_keeps_the_participants(
    app: Flask, provider: Provider,
) -> None:
    assert provider.post("callNotify").json == {"status": "applied"}
    call = the_call(app)
    assert (call.provider_call_id, call.state) == (SESSION, "ringing")
    assert (call.from_number, call.to_number) == ("+46890510", "+46890200")
    # remoteParticipantId is the callee's leg: what a reference-less callAnswered names.
    assert (call.caller_participant_id, call.callee_participant_id) == (SESSION, CALLEE_LEG)


def test_call_answered_sample_alone_is_kept_but_attached_to_no_call(
    app: Flask, provider: Provider,
) -> None:
    provider.post("callAnswered")
    assert calls(app) == []  # no sessionId, no reference, no known participant: no call
    assert deliveries(app) == [("callAnswered", None, "applied")]


def test_call_answered_sample_finds_its_call_through_call_notify(
    app: Flask, provider: Provider,
) -> None:
    provider.post("newCall")
    provider.post("callNotify")
    provider.post("callAnswered")
    call = the_call(app)
    assert call.state == "talking" and call.answered_at is not None
    assert (call.agent.name if call.agent else None, call.answered_by) == ("ann", "46890200")
    assert call.provider_facts["reply_id"] == load("callAnswered")["replyId"]
    assert call.provider_facts["connection_id"] == "da9ce5c0-c787-11eb-a47c-c9c4e460ef16"
    assert (call.caller_participant_id, call.callee_participant_id) == (CALLER_LEG, CALLEE_LEG)
    assert deliveries(app)[-1] == ("callAnswered", call.id, "applied")


def test_call_answered_with_the_desk_reference_needs_no_participants(
    app: Flask, provider: Provider,
) -> None:
    # Invented from the sample: what the service sends when it copies the desk's reference.
    provider.post("newCall")
    provider.post("callAnswered", {**load("callAnswered"),
                                   "sessionReferenceId": {"deskCallId": SESSION}})
    assert the_call(app).state == "talking"


def test_call_event_sample_ends_the_call_and_drops_the_remaining_party(
    app: Flask, provider: Provider,
) -> None:
    provider.post("newCall")
    provider.post("callNotify")
    provider.post("callAnswered")
    assert provider.post("callEvent").json == {"action": "drop"}
    call = the_call(app)
    assert (call.state, call.end_cause, call.outcome) == ("ended", "callee-hangup", "answered")


def test_session_completed_sample_ends_an_unanswered_call_as_missed(
    app: Flask, provider: Provider,
) -> None:
    provider.post("newCall")
    provider.post("sessionCompleted")
    call = the_call(app)
    assert (call.state, call.outcome, call.duration, call.talk_seconds) == (
        "ended", "missed", None, None)  # the session lasted, but nobody talked
    assert call.provider_facts["session_seconds"] == SAMPLE_SESSION_SECONDS


def test_recording_ready_sample_marks_the_recording_ready(
    app: Flask, provider: Provider,
) -> None:
    provider.post("newCall")
    provider.post("recordingReady")
    call = the_call(app)
    assert (call.recording_state, call.recording_file_name) == ("ready", "recording.mp3")


def test_new_remote_call_sample_rings_and_answers_the_reference_as_text(
    app: Flask, provider: Provider,
) -> None:
    answer = provider.post("newRemoteCall").json
    assert answer == {"sessionReferenceId": json.dumps({"deskCallId": SESSION})}
    call = the_call(app)
    assert (call.state, call.from_number, call.to_number) == ("ringing", "1234567", "user")
    assert call.provider_facts["reply_id"] == load("newRemoteCall")["replyId"]


def test_get_ivr_command_sample_gets_an_empty_command(app: Flask, provider: Provider) -> None:
    assert provider.post("getIvrCommand").json == {}
    assert calls(app) == []  # asking for a command is not a call
    assert deliveries(app) == [("getIvrCommand", None, "applied")]


def test_get_call_identifier_sample_gets_the_desk_reference(
    app: Flask, provider: Provider,
) -> None:
    assert provider.post("getCallIdentifier").json == {
        "sessionId": SESSION, "sessionReferenceId": {"deskCallId": SESSION}}


def test_alarm_sample_becomes_a_supervisor_alert(app: Flask, provider: Provider) -> None:
    provider.post("alarm")
    with app.app_context():
        alerts = [(a.kind, a.message) for a in db.session.scalars(select(Alert))]
    assert alerts == [("sessionError", "sessionError: maxDuration (status string)")]


def test_a_retried_sample_is_a_duplicate(app: Flask, provider: Provider) -> None:
    provider.post("newCall")
    first = provider.post("callNotify")
    again = provider.post("callNotify")
    assert (first.json, again.json) == ({"status": "applied"}, {"status": "duplicate"})


# -- the documented sequence, and its talk time everywhere ---------------------------------


def row_of(html: str, call_id: int) -> str:
    match = re.search(rf'<article[^>]*id="call-{call_id}".*?</article>', html, re.DOTALL)
    assert match, f"no row for call {call_id}"
    return match.group(0)


def test_the_documented_sequence_ends_answered_with_one_talk_time_everywhere(
    app: Flask, provider: Provider,
) -> None:
    for callback in ("newCall", "callNotify", "callAnswered", "sessionCompleted"):
        provider.post(callback)
    call = the_call(app)
    assert (call.state, call.outcome, call.agent_id is not None) == ("ended", "answered", True)
    ringing = (call.answered_at - call.started_at).total_seconds()
    # The session's length minus the time it rang before the answer.
    assert call.duration == int(SAMPLE_SESSION_SECONDS - ringing) > 46000
    talk, shown = call.duration, duration(call.duration)
    assert shown.startswith("13:01:")

    sue = app.test_client()
    login(sue, "sue")
    api = sue.get(f"/api/v1/calls/{call.id}").json
    assert (api["outcome"], api["duration"]) == ("answered", talk)

    ann = app.test_client()
    login(ann, "ann")
    for board in (ann.get("/"), sue.get("/supervisor")):  # the boards' ended lists
        row = row_of(board.get_data(as_text=True), call.id)
        assert f'data-duration="{talk}"' in row  # what embed.js sends as call_ended's duration
        assert re.search(rf'call__timer--done[^>]*>{re.escape(shown)}</time>', row)

    page = sue.get(f"/calls/{call.id}").get_data(as_text=True)
    assert f"talked {shown}" in page

    history = sue.get("/history").get_data(as_text=True)
    history_row = re.search(rf'<tr id="history-{call.id}">.*?</tr>', history, re.DOTALL)
    assert history_row and f"<td>{shown}</td>" in history_row.group(0)

    (exported,) = csv.DictReader(io.StringIO(sue.get("/history.csv").get_data(as_text=True)))
    assert (exported["outcome"], exported["duration_seconds"]) == ("answered", str(talk))


def test_talk_time_without_session_duration_is_ended_minus_answered(
    app: Flask, provider: Provider,
) -> None:
    # Invented: a sessionCompleted without sessionDuration; the times the desk saw decide.
    provider.post("newCall")
    provider.post("callNotify")
    provider.post("callAnswered")
    completed = {k: v for k, v in load("sessionCompleted").items() if k != "sessionDuration"}
    provider.post("sessionCompleted", completed)
    call = the_call(app)
    assert call.duration is None and call.outcome == "answered"
    expected = int((call.ended_at - call.answered_at).total_seconds())
    assert call.talk_seconds == expected
    sue = app.test_client()
    login(sue, "sue")
    assert sue.get(f"/api/v1/calls/{call.id}").json["duration"] == expected
    board = sue.get("/supervisor").get_data(as_text=True)
    assert f'data-duration="{expected}"' in row_of(board, call.id)


def test_session_completed_before_call_answered_gives_the_same_talk_time(
    app: Flask, provider: Provider,
) -> None:
    # Out of order (invented): the figure must not depend on which callback came last.
    for callback in ("newCall", "callNotify", "sessionCompleted", "callAnswered"):
        provider.post(callback)
    call = the_call(app)
    ringing = (call.answered_at - call.started_at).total_seconds()
    assert (call.outcome, call.duration) == ("answered", int(SAMPLE_SESSION_SECONDS - ringing))


# -- the endpoint family, over real HTTP to a stand-in ----------------------------------------


@pytest.mark.parametrize(("api", "endpoint"), [("base", "hangupcall"), ("jwt", "hangupcalljwt")])
def test_hang_up_uses_the_configured_endpoint_family(
    tmp_path: Path, provider_keys: tuple[str, str], api: str, endpoint: str,
) -> None:
    desk_private, desk_public = key_pair()
    (tmp_path / "desk.pem").write_text(desk_private)
    # No desk_url: the stand-in answers and records, and sends no callbacks back.
    standin = StandIn(desk_url="", desk_public_key=desk_public,
                      provider_private_key=provider_keys[0])
    app = make_app(tmp_path, provider_keys[1], DESK_MEDIASERVICE_URL=standin.url,
                   DESK_MEDIASERVICE_KEY_FILE=str(tmp_path / "desk.pem"),
                   DESK_MEDIASERVICE_API=api)
    try:
        provider = Provider(app.test_client(), provider_keys[0])
        for callback in ("newCall", "callNotify", "callAnswered"):
            provider.post(callback)
        call = the_call(app)
        ann = app.test_client()
        token = login(ann, "ann")
        row = ann.post(f"/calls/{call.id}/hangup",
                       headers={"X-CSRFToken": token, "HX-Request": "true"})
        assert row.status_code == 200 and "Hanging up" in row.get_data(as_text=True)
        (seen,) = standin.seen
        assert (seen.path, seen.body) == (f"/{DOMAIN}/{endpoint}",
                                          {"replyId": load("callAnswered")["replyId"]})
        assert seen.claims is not None  # the desk's RS256 JWT, whichever family
    finally:
        standin.stop()
        db.dispose()


def test_every_documented_callback_has_its_fixture_and_source() -> None:
    from desk.providers.mediaservice.parse import ALARM
    from desk.providers.mediaservice.parse import CALLBACKS as PARSED
    from tests.providers.mediaservice.samples import CALLBACKS, FIXTURES

    assert {p.stem for p in FIXTURES.glob("*.json")} == set(CALLBACKS)
    assert set(PARSED) - {ALARM} | {"alarm"} == set(CALLBACKS)
    sources = (FIXTURES / "SOURCES.md").read_text()
    assert all(f"`{name}.json`" in sources for name in CALLBACKS)


@pytest.mark.parametrize("shown", ["0", "1"])
def test_whether_the_agent_sees_the_listen_in_is_a_setting(
    tmp_path: Path, provider_keys: tuple[str, str], shown: str,
) -> None:
    from desk.models import User
    from desk.services import listen

    app = make_app(tmp_path, provider_keys[1], DESK_LISTEN_IN_SHOWN_TO_AGENT=shown)
    try:
        with app.app_context():
            sue = db.session.scalars(select(User).where(User.name == "sue")).one()
            listen.start(db.session(), sue, agent_name="ann", address="sip:sue-desk@pbx.example")
        provider = Provider(app.test_client(), provider_keys[0])
        answer = provider.post("newCall").json
        assert answer["monitorDestAddr"] == "sip:sue-desk@pbx.example"
        provider.post("callNotify")
        provider.post("callAnswered")
        # Invented from the sample: the monitoring leg's callAnswered, with the desk's
        # reference, the leg's own participant and the SIP user it rang.
        provider.post("callAnswered", {
            **load("callAnswered"), "monitoringParticipant": True,
            "calleeParticipantId": "mon-leg-1", "remotePartyNumber": "sue-desk",
            "connectionId": "mon-connection", "sessionReferenceId": {"deskCallId": SESSION}})
        call = the_call(app)
        assert (call.state, call.answered_by) == ("talking", "46890200")
        assert call.provider_facts["listened_by"] == "sue"
        ann = app.test_client()
        login(ann, "ann")
        board = ann.get("/").get_data(as_text=True)
        assert f'id="call-{call.id}"' in board
        assert ("listened by sue" in board) is (shown == "1")
        supervisor = app.test_client()
        login(supervisor, "sue")
        assert "listened by sue" in supervisor.get("/supervisor").get_data(as_text=True)
    finally:
        db.dispose()
