"""Wallboard counters on hand-made calls (midnight, time zones, DST), on SQLite and
PostgreSQL; the live push of the counters; the wallboard page and acknowledging alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.live.render import render_changes, render_snapshot
from desk.models import Alert, Call, User
from desk.services import wallboard
from tests.conftest import base_config, login
from tests.services import fresh_postgres_database

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN)  # 11:00 UTC


def local(hour: int, minute: int, second: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=BERLIN)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """An app on SQLite or on a fresh PostgreSQL database: the counter SQL differs per dialect."""
    if request.param == "sqlite":
        app = create_app(base_config(f"sqlite:///{tmp_path / 'wb.sqlite3'}"))
        upgrade_database(app)
        yield app
        db.dispose()
        return
    with fresh_postgres_database() as url:
        app = create_app(base_config(url))
        upgrade_database(app)
        yield app
        db.dispose()


def add_call(ref: str, **fields: Any) -> Call:
    values: dict[str, Any] = {"provider": "placetel", "provider_call_id": ref,
                              "direction": "inbound", "state": "ended"}
    values.update(fields)
    call = Call(**values)
    db.session.add(call)
    return call


def hand_made_day() -> None:
    """Calls around 2026-03-10 in Berlin (UTC+1): see the expected values in the tests."""
    # 1. started before midnight, answered after: answered today, offered yesterday.
    add_call("late-answered", started_at=local(23, 50, day=9), answered_at=local(0, 5),
             ended_at=local(0, 15), duration=600)
    # 2. missed just before midnight: yesterday's.
    add_call("before-midnight", started_at=local(23, 55, day=9), ended_at=local(23, 59, day=9),
             end_cause="missed")
    # 3. 00:30 local is 23:30 UTC the day before: today's in Berlin. Caller gave up.
    add_call("early-missed", started_at=local(0, 30), ended_at=local(0, 31))
    # 4. voicemail: missed, not abandoned.
    add_call("voicemail", started_at=local(0, 14, 59), ended_at=local(0, 16),
             end_cause="voicemail")
    # 5./6. refused on purpose: neither offered nor missed.
    add_call("blocked", started_at=local(0, 15), ended_at=local(0, 15), end_cause="blocked")
    add_call("rejected", started_at=local(1, 0), ended_at=local(1, 0), end_cause="rejected")
    # 7. answered, no duration from the provider: 120 s from the timestamps.
    add_call("no-duration", started_at=local(9, 0), answered_at=local(9, 1),
             ended_at=local(9, 3))
    # 8. outbound nobody picked up: not a missed inbound call.
    add_call("outbound", direction="outbound", started_at=local(10, 0), ended_at=local(10, 1),
             end_cause="no_answer")
    # 9.-12. live calls.
    add_call("waiting-old", state="ringing", started_at=local(11, 50), ringing_at=local(11, 51))
    add_call("waiting-new", state="ringing", started_at=local(11, 58))
    add_call("dialling", direction="outbound", state="dialling", started_at=local(11, 59))
    add_call("talking", state="talking", started_at=local(11, 40), answered_at=local(11, 41),
             recording_state="on")
    # 13. all of it yesterday.
    add_call("yesterday", started_at=local(10, 0, day=9), answered_at=local(10, 1, day=9),
             ended_at=local(10, 5, day=9), duration=240)
    db.session.commit()


def test_counters_on_a_hand_made_day(db_app: Flask) -> None:
    with db_app.app_context():
        hand_made_day()
        wb = wallboard.compute(db.session, "Europe/Berlin", now=NOW)

    assert (wb.day.start, wb.day.end) == (
        datetime(2026, 3, 9, 23, 0, tzinfo=UTC), datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    assert (wb.waiting, wb.ringing, wb.talking, wb.recording) == (2, 3, 1, 1)
    assert wb.answered == 3  # late-answered, no-duration, talking
    assert wb.handle_time == pytest.approx(360)  # (600 + 120) / 2; the live call not yet
    assert wb.missed == 2  # early-missed, voicemail
    assert (wb.abandoned, wb.offered) == (1, 6)
    assert wb.abandoned_rate == pytest.approx(1 / 6)
    assert wb.longest_wait_since == local(11, 51)

    assert len(wb.buckets) == 96
    expected = [0] * 96
    for index, count in {0: 1, 1: 1, 2: 1, 4: 1, 36: 1, 40: 1, 46: 1, 47: 3}.items():
        expected[index] = count
    assert wb.buckets == expected  # 00:14:59 in bucket 0, 00:15:00 in bucket 1
    assert [i for i, n in enumerate(wb.abandoned_buckets) if n] == [2]
    chart = wb.chart()
    assert chart["x"][0] == int(wb.day.start.timestamp())
    assert chart["x"][1] - chart["x"][0] == 900 and chart["tz"] == "Europe/Berlin"


def test_the_same_calls_counted_in_another_time_zone(db_app: Flask) -> None:
    """In UTC the small hours of the Berlin day belong to the day before."""
    with db_app.app_context():
        hand_made_day()
        wb = wallboard.compute(db.session, "UTC", now=NOW)
    assert wb.day.start == datetime(2026, 3, 10, tzinfo=UTC)
    assert wb.answered == 2  # late-answered was answered at 23:05 UTC the day before
    assert wb.missed == 0
    assert (wb.abandoned, wb.offered) == (0, 4)
    assert (wb.waiting, wb.talking) == (2, 1)  # live counts do not depend on the day


def test_counters_just_after_midnight_start_from_zero(db_app: Flask) -> None:
    with db_app.app_context():
        hand_made_day()
        wb = wallboard.compute(db.session, "Europe/Berlin", now=local(0, 0, day=11))
    assert (wb.answered, wb.missed, wb.offered, wb.handle_time) == (0, 0, 0, None)
    assert wb.abandoned_rate is None
    assert sum(wb.buckets) == 0


def test_days_with_a_clock_change_have_23_or_25_hours() -> None:
    spring = wallboard.Day.of(date(2026, 3, 29), BERLIN)
    autumn = wallboard.Day.of(date(2026, 10, 25), BERLIN)
    assert spring.end - spring.start == timedelta(hours=23) and spring.bucket_count == 92
    assert autumn.end - autumn.start == timedelta(hours=25) and autumn.bucket_count == 100


def test_a_call_on_a_clock_change_day_lands_in_the_right_bucket(app: Flask) -> None:
    # 2026-03-29 03:00 CEST is 01:00 UTC, two hours after midnight (23:00 UTC): bucket 8.
    with app.app_context():
        add_call("dst", started_at=datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN),
                 ended_at=datetime(2026, 3, 29, 3, 5, tzinfo=BERLIN))
        db.session.commit()
        wb = wallboard.compute(db.session, "Europe/Berlin",
                               now=datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN))
    assert [i for i, n in enumerate(wb.buckets) if n] == [8]
    assert len(wb.buckets) == 92


# -- live push and pages -------------------------------------------------------------------------


def test_a_call_change_pushes_the_counters_to_supervisors_only(
    app: Flask, users: dict[str, int]
) -> None:
    with app.app_context():
        call = add_call("push", state="ringing", started_at=datetime.now(UTC))
        db.session.commit()
        call_id = call.id
    everyone = {"agent", "supervisor"}
    fragments = render_changes(app, {"calls": {call_id}}, everyone)
    counters = [(aud, html) for aud, html in fragments if 'id="wallboard-counters"' in html]
    assert [aud for aud, _ in counters] == ["supervisor"]
    html = counters[0][1]
    assert 'hx-swap-oob="true"' in html
    assert 'data-counter="waiting">1<' in html
    # Presence changes alone do not recompute the counters.
    assert not any("wallboard-counters" in h for _, h in render_changes(
        app, {"agents": {users["ann"]}}, everyone))
    # A process with no supervisor board open does not compute them at all.
    assert not any("wallboard-counters" in h for _, h in render_changes(
        app, {"calls": {call_id}}, {"agent"}))


def test_snapshot_resyncs_the_counters_for_supervisors(app: Flask, users: dict[str, int]) -> None:
    with app.test_request_context():
        sue = db.session.get(User, users["sue"])
        ann = db.session.get(User, users["ann"])
        assert 'id="wallboard-counters"' in render_snapshot(db.session, sue)
        assert "wallboard-counters" not in render_snapshot(db.session, ann)


def test_wallboard_page_is_for_supervisors(client: FlaskClient, users: dict[str, int]) -> None:
    assert client.get("/wallboard").status_code == 302  # to the login page
    login(client, "ann")
    assert client.get("/wallboard").status_code == 403
    assert client.get("/wallboard/counters").status_code == 403


def test_wallboard_page_shows_counters_tiles_chart_and_alarms(
    app: Flask, client: FlaskClient, users: dict[str, int]
) -> None:
    with app.app_context():
        add_call("tile", state="talking", started_at=datetime.now(UTC),
                 answered_at=datetime.now(UTC), agent_id=users["ann"])
        db.session.add(Alert(provider="mediaservice", kind="trunk-down", message="Trunk 2 down"))
        db.session.commit()
    login(client, "sue")
    page = client.get("/wallboard").get_data(as_text=True)
    assert 'id="wallboard-counters"' in page and "data-chart=" in page
    assert 'id="wallboard-chart"' in page and "uPlot.iife.min.js" in page
    assert f'id="agent-{users["ann"]}"' in page
    assert 'data-amber="180" data-red="420"' in page  # the call timer's thresholds
    assert "Trunk 2 down" in page and "Acknowledge" in page
    fragment = client.get("/wallboard/counters").get_data(as_text=True)
    assert fragment.startswith("<section") and 'data-counter="talking">1<' in fragment


def test_acknowledging_an_alert(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    with app.app_context():
        alert = Alert(provider="mediaservice", kind="alarm", message="Link lost")
        db.session.add(alert)
        db.session.commit()
        alert_id = alert.id
    token = login(client, "sue")
    url = f"/alerts/{alert_id}/acknowledge"
    assert client.post(url).status_code == 400  # no CSRF token
    answer = client.post(url, headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert answer.status_code == 200
    assert 'id="alerts"' in answer.get_data(as_text=True)
    assert "Link lost" not in answer.get_data(as_text=True)
    assert client.post(url, data={"csrf_token": token}).status_code == 302  # again: no change
    assert client.post("/alerts/999/acknowledge", data={"csrf_token": token}).status_code == 404
    with app.app_context():
        stored = db.session.get(Alert, alert_id)
        assert stored is not None and stored.acknowledged_by == users["sue"]
        assert stored.acknowledged_at is not None
    assert "Link lost" not in client.get("/supervisor").get_data(as_text=True)


def test_agents_cannot_acknowledge_alerts(
    app: Flask, client: FlaskClient, users: dict[str, int]
) -> None:
    with app.app_context():
        db.session.add(Alert(provider="mediaservice", kind="alarm", message="x"))
        db.session.commit()
    token = login(client, "ann")
    assert client.post("/alerts/1/acknowledge", data={"csrf_token": token}).status_code == 403
