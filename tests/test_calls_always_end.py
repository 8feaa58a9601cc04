"""Calls always end (desk.services.sweeper): silence closes a call, pending expires, a
supervisor's Close call, and Hang up is never blocked by another pending action.

Time passes in the data, not on the clock: a test moves a call's times (and its deliveries')
into the past in the database and then sweeps, through the service or the real command.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select, update

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import AuditEntry, Call, Delivery, utcnow
from desk.services.sweeper import sweep
from tests.conftest import PASSWORD, PLACETEL_AUTH, add_user, base_config, login
from tests.mediaservice_standin import DOMAIN, StandIn, key_pair
from tests.servers import LiveServer, desk_env, flask_cli, prepare, recv_until
from tests.services import fresh_postgres_database, shared_redis_url


# -- helpers -------------------------------------------------------------------------------
def placetel(client: FlaskClient, **form: str) -> None:
    response = client.post("/webhooks/placetel", data=form, auth=PLACETEL_AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)


def ring(client: FlaskClient, call_id: str, number: str = "022129191999") -> int:
    placetel(client, event="IncomingCall", call_id=call_id, to="0221", **{"from": number})
    return call_row(call_id).id


def call_row(provider_call_id: str) -> Call:
    with db.new_session() as session:
        return session.scalars(
            select(Call).where(Call.provider_call_id == provider_call_id)).one()


def call_by_id(call_id: int) -> Call:
    with db.new_session() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call


def age(call_id: int, seconds: int) -> None:
    """Everything the desk heard about the call happened ``seconds`` earlier."""
    shift = timedelta(seconds=seconds)
    with db.new_session() as session:
        call = session.get(Call, call_id)
        assert call is not None
        for name in ("started_at", "ringing_at", "answered_at"):
            if getattr(call, name) is not None:
                setattr(call, name, getattr(call, name) - shift)
        for delivery in session.scalars(select(Delivery).where(Delivery.call_id == call_id)):
            delivery.received_at -= shift
        session.commit()


def run_sweep(app: Flask) -> tuple[tuple[int, ...], tuple[int, ...]]:
    with db.new_session() as session:
        swept = sweep(session, app.config)
    return swept.closed, swept.expired


def audit_of(call_id: int) -> list[tuple[str, str, int | None]]:
    with db.new_session() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(AuditEntry.action, AuditEntry.outcome, AuditEntry.user_id)
            .where(AuditEntry.call_id == call_id).order_by(AuditEntry.id))]


def client_of(app: Flask, name: str) -> tuple[FlaskClient, dict[str, str]]:
    """A logged-in client of its own and the headers an htmx button sends."""
    client = app.test_client()
    token = login(client, name)
    return client, {"X-CSRFToken": token, "HX-Request": "true"}


# -- silence closes a call -----------------------------------------------------------------
def test_a_silent_ringing_call_is_closed_and_a_fresh_one_is_not(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    silent, fresh = ring(client, "quiet"), ring(client, "fresh")
    age(silent, 601)  # DESK_MAX_SILENCE_RINGING is 600
    age(fresh, 590)

    closed, _expired = run_sweep(app)

    assert closed == (silent,)
    call = call_by_id(silent)
    assert (call.state, call.end_cause, call.outcome) == ("ended", "no_end_event", "missed")
    assert call_by_id(fresh).state == "ringing"
    assert audit_of(silent) == [("auto-close", "ok", None)]  # the desk did it: no user
    assert run_sweep(app) == ((), ())  # closed once

    sue, _ = client_of(app, "sue")
    page = sue.get(f"/calls/{silent}").get_data(as_text=True)
    assert "Ended — no end event received" in page
    assert "The desk closed the call" in page
    assert "no end event received" in sue.get("/supervisor").get_data(as_text=True)
    assert "<td>the desk</td>" in sue.get(f"/audit?call={silent}").get_data(as_text=True)


def test_a_late_delivery_keeps_a_call_open(app: Flask, client: FlaskClient) -> None:
    call_id = ring(client, "late")
    age(call_id, 3600)
    # Placetel says something more about the call (a retried IncomingCall): it is not silent.
    placetel(client, event="IncomingCall", call_id="late", to="0221", **{"from": "022129191999"})
    assert run_sweep(app) == ((), ())
    assert call_by_id(call_id).state == "ringing"


def test_talking_calls_and_unreported_answers_get_the_talking_limit(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    talking = ring(client, "talk")
    placetel(client, event="CallAccepted", call_id="talk", peer="777ann@fpbx.de", to="0221",
             **{"from": "022129191999"})
    # Placetel sends no CallAccepted after an OutgoingCall: it stays "dialling" while talking.
    placetel(client, event="OutgoingCall", call_id="out", to="022129191000",
             peer="777ann@fpbx.de", direction="out", **{"from": "0221"})
    outgoing = call_row("out").id
    assert (call_by_id(talking).state, call_by_id(outgoing).state) == ("talking", "dialling")
    age(talking, 4 * 3600)
    age(outgoing, 4 * 3600)
    assert run_sweep(app) == ((), ())

    age(talking, 4 * 3600 + 1)  # past DESK_MAX_SILENCE_TALKING (8 hours)
    assert run_sweep(app)[0] == (talking,)
    assert call_by_id(talking).outcome == "answered"
    assert call_by_id(outgoing).state == "dialling"


def test_a_providers_own_limit_overrides_the_default(tmp_path: Path) -> None:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_MAX_SILENCE_BY_PROVIDER="placetel:talking=3600"))
    upgrade_database(app)
    add_user(app, "ann", extension="101", sip_peer="777ann@fpbx.de")
    try:
        client = app.test_client()
        call_id = ring(client, "cc")
        placetel(client, event="CallAccepted", call_id="cc", peer="777ann@fpbx.de",
                 to="0221", **{"from": "022129191999"})
        age(call_id, 3601)
        assert run_sweep(app)[0] == (call_id,)
    finally:
        db.dispose()


@pytest.mark.parametrize("value", ["placetel:talking", "nobody:talking=60", "placetel:ended=60",
                                   "placetel:ringing=5"])
def test_a_malformed_provider_limit_stops_the_desk(tmp_path: Path, value: str) -> None:
    from desk.settings import SettingsError

    with pytest.raises(SettingsError, match="DESK_MAX_SILENCE_BY_PROVIDER"):
        create_app(base_config(f"sqlite:///{tmp_path / 'x.sqlite3'}",
                               DESK_MAX_SILENCE_BY_PROVIDER=value))


def test_the_sweep_command_closes_silent_calls(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient, users: dict[str, int],
) -> None:
    call_id = ring(client, "cli")
    age(call_id, 700)
    result = runner.invoke(args=["calls", "sweep"])
    assert result.exit_code == 0, result.output
    assert "Closed 1 call(s)" in result.output
    assert call_by_id(call_id).end_cause == "no_end_event"
    again = runner.invoke(args=["calls", "sweep"])
    assert "Closed 0 call(s)" in again.output


# -- Close call ----------------------------------------------------------------------------
def test_a_supervisor_closes_any_live_call_audited_and_agents_may_not(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int],
) -> None:
    call_id = ring(client, "stuck")
    placetel(client, event="CallAccepted", call_id="stuck", peer="777ann@fpbx.de", to="0221",
             **{"from": "022129191999"})
    ann, ann_headers = client_of(app, "ann")
    sue, sue_headers = client_of(app, "sue")
    close = f"/calls/{call_id}/close"
    assert f'hx-post="{close}"' in sue.get("/supervisor").get_data(as_text=True)
    assert close not in ann.get("/").get_data(as_text=True)  # ann's own call: no Close for her

    refused = ann.post(close, headers=ann_headers)
    assert refused.status_code == 403
    token = runner.invoke(args=["users", "token", "ann"]).output.strip()
    api_refused = client.post(f"/api/v1/calls/{call_id}/close",
                              headers={"Authorization": f"Bearer {token}"})
    assert api_refused.status_code == 403
    assert call_by_id(call_id).state == "talking"

    row = sue.post(close, headers=sue_headers)
    assert row.status_code == 200
    assert 'data-state="ended"' in row.get_data(as_text=True)
    call = call_by_id(call_id)
    assert (call.state, call.end_cause) == ("ended", "closed_by_supervisor")
    assert audit_of(call_id) == [("close", "ok", users["sue"])]
    assert "Closed on the desk by a supervisor" in sue.get(f"/calls/{call_id}").get_data(
        as_text=True)

    again = sue.post(close, headers=sue_headers)
    assert again.status_code == 409
    assert audit_of(call_id)[-1] == ("close", "invalid", users["sue"])


def test_the_api_closes_a_call_for_supervisors(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int],
) -> None:
    call_id = ring(client, "api")
    token = runner.invoke(args=["users", "token", "sue"]).output.strip()
    response = client.post(f"/api/v1/calls/{call_id}/close",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert (response.json["state"], response.json["end_cause"]) == (
        "ended", "closed_by_supervisor")
    missing = client.post("/api/v1/calls/999/close", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404


# -- pending actions, with a mediaservice stand-in on loopback -----------------------------
@dataclass
class Mediaservice:
    app: Flask
    standin: StandIn
    users: dict[str, int]

    def talking_call(self, session_id: str) -> int:
        """A connected mediaservice call of ann's, as its callAnswered leaves it."""
        now = utcnow()
        with db.new_session() as session:
            call = Call(provider="mediaservice", provider_call_id=session_id, state="talking",
                        direction="inbound", from_number="46890510", to_number="46890200",
                        started_at=now, ringing_at=now, answered_at=now,
                        agent_id=self.users["ann"], answered_by="101", version=1,
                        provider_facts={"reply_id": f"reply.{session_id}",
                                        "connection_id": self.standin.connection_id,
                                        "session_id": session_id})
            session.add(call)
            session.commit()
            return call.id


@pytest.fixture
def mediaservice(tmp_path: Path) -> Iterator[Mediaservice]:
    desk_private, desk_public = key_pair()
    (tmp_path / "desk.pem").write_text(desk_private)
    # No desk_url: the stand-in answers the desk's requests but sends no confirming callback.
    standin = StandIn(desk_url="", desk_public_key=desk_public, provider_private_key="")
    app = create_app(base_config(
        f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_MEDIASERVICE_URL=standin.url,
        DESK_MEDIASERVICE_DOMAIN=DOMAIN, DESK_MEDIASERVICE_KEY_FILE=str(tmp_path / "desk.pem"),
        DESK_PROVIDER_TIMEOUT="2",
    ))
    upgrade_database(app)
    users = {"ann": add_user(app, "ann", extension="101", sip_peer="agent101@pbx"),
             "sue": add_user(app, "sue", role="supervisor", extension="100")}
    try:
        yield Mediaservice(app, standin, users)
    finally:
        db.dispose()
        standin.stop()


def backdate_pending(call_id: int, seconds: int) -> None:
    with db.new_session() as session:
        session.execute(update(Call).where(Call.id == call_id).values(
            pending_since=utcnow() - timedelta(seconds=seconds)))
        session.commit()


def test_an_unconfirmed_hangup_reverts_after_its_timeout(mediaservice: Mediaservice) -> None:
    call_id = mediaservice.talking_call("sess-unconfirmed")
    ann, headers = client_of(mediaservice.app, "ann")
    response = ann.post(f"/calls/{call_id}/hangup", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [seen.path for seen in mediaservice.standin.seen] == [f"/{DOMAIN}/hangupcall"]
    assert call_by_id(call_id).pending_action == "hangup"

    assert run_sweep(mediaservice.app) == ((), ())  # within DESK_PENDING_TIMEOUT: still waiting
    assert call_by_id(call_id).pending_action == "hangup"

    backdate_pending(call_id, 31)
    assert run_sweep(mediaservice.app) == ((), (call_id,))
    call = call_by_id(call_id)
    assert (call.state, call.pending_action) == ("talking", None)
    assert "The provider did not confirm the hang up" in (call.action_error or "")
    assert audit_of(call_id) == [("hangup", "ok", mediaservice.users["ann"]),
                                 ("pending-expired", "error", None)]
    row = ann.get("/").get_data(as_text=True)
    assert "The provider did not confirm the hang up" in row
    assert run_sweep(mediaservice.app) == ((), ())  # expired once


def test_hang_up_succeeds_while_a_split_is_pending_but_not_twice(
    mediaservice: Mediaservice,
) -> None:
    call_id = mediaservice.talking_call("sess-split")
    ann, headers = client_of(mediaservice.app, "ann")
    split = ann.post(f"/calls/{call_id}/split", data={"target": "sip:102@pbx"}, headers=headers)
    assert split.status_code == 200, split.get_data(as_text=True)
    assert call_by_id(call_id).pending_action == "split"
    # The split waits for its callbacks; Hang up stays pressable meanwhile.
    page = ann.get("/").get_data(as_text=True)
    assert "Transferring…" in page
    button = page[page.index(f'hx-post="/calls/{call_id}/hangup"'):]
    assert not re.search(r"\sdisabled[\s>]", button[:button.index(">") + 1])

    hangup = ann.post(f"/calls/{call_id}/hangup", headers=headers)
    assert hangup.status_code == 200, hangup.get_data(as_text=True)
    assert call_by_id(call_id).pending_action == "hangup"
    assert [seen.path for seen in mediaservice.standin.seen] == [
        f"/{DOMAIN}/splitconnection", f"/{DOMAIN}/hangupcall"]

    second = ann.post(f"/calls/{call_id}/hangup", headers=headers)
    assert second.status_code == 409
    assert "already in progress" in second.get_data(as_text=True)
    assert len(mediaservice.standin.seen) == 2  # no second request to the provider


def test_close_supersedes_a_pending_action(mediaservice: Mediaservice) -> None:
    call_id = mediaservice.talking_call("sess-close")
    ann, headers = client_of(mediaservice.app, "ann")
    assert ann.post(f"/calls/{call_id}/hangup", headers=headers).status_code == 200
    sue, sue_headers = client_of(mediaservice.app, "sue")
    assert sue.post(f"/calls/{call_id}/close", headers=sue_headers).status_code == 200
    call = call_by_id(call_id)
    assert (call.state, call.pending_action, call.end_cause) == (
        "ended", None, "closed_by_supervisor")
    assert len(mediaservice.standin.seen) == 1  # closing asked the provider nothing


# -- several sweepers at once --------------------------------------------------------------
def sweeps_at_once(app: Flask, how_many: int = 4) -> list[tuple[int, ...]]:
    """``how_many`` sweeps started together, each with its own session and connection."""
    barrier = threading.Barrier(how_many)
    results: list[tuple[int, ...]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(run_sweep(app)[0])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(how_many)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def concurrent_close_is_once(app: Flask) -> None:
    client = app.test_client()
    call_id = ring(client, "race")
    age(call_id, 601)
    results = sweeps_at_once(app)
    assert sorted(results, key=len) == [(), (), (), (call_id,)]
    assert audit_of(call_id) == [("auto-close", "ok", None)]
    assert call_by_id(call_id).end_cause == "no_end_event"


def test_sweeps_at_the_same_moment_close_a_call_once(app: Flask) -> None:
    concurrent_close_is_once(app)


@pytest.mark.postgres
def test_sweeps_at_the_same_moment_close_a_call_once_on_postgres() -> None:
    with fresh_postgres_database() as url:
        app = create_app(base_config(url))
        upgrade_database(app)
        try:
            concurrent_close_is_once(app)
        finally:
            db.dispose()


# -- across processes ----------------------------------------------------------------------
@pytest.mark.redis
def test_the_sweep_command_updates_boards_served_by_other_processes(tmp_path: Path) -> None:
    """The command's process commits one change and exits: it must still reach the board."""
    database = tmp_path / "desk.sqlite3"
    env = desk_env(f"sqlite:///{database}", DESK_REDIS_URL=shared_redis_url(),
                   DESK_REDIS_CHANNEL=f"desk:test:{tmp_path.name}",
                   DESK_SWEEP_INTERVAL="0")  # only the command sweeps
    prepare(env, PASSWORD)
    server = LiveServer(env)
    try:
        with server.board(server.login("sue", PASSWORD)) as board:
            board.recv(timeout=5)
            assert server.placetel(event="IncomingCall", call_id="gone", to="0221",
                                   **{"from": "0555"}).ok
            assert "0555" in recv_until(board, 'data-state="ringing"')
            create_app(base_config(f"sqlite:///{database}"))  # binds db to the same file
            try:
                age(call_row("gone").id, 601)
            finally:
                db.dispose()
            assert "Closed 1 call(s)" in flask_cli(env, "calls", "sweep")
            assert "0555" in recv_until(board, 'data-state="ended"', timeout=10)
    finally:
        server.stop()
