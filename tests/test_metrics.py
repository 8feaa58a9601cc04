"""``/metrics`` and ``/healthz`` (``desk.metrics``) over real HTTP to the desk under gunicorn,
with the machine's Redis for live fan-out and Teleforge's lists: the token, the webhook
counter per provider and outcome, the live hub's numbers and the Teleforge consumer's."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from desk import create_app
from desk.extensions import db
from desk.settings import SettingsError
from tests.conftest import PASSWORD, base_config
from tests.servers import LiveServer, desk_env, prepare, recv_until
from tests.services import shared_redis_url

TOKEN = "metrics-" + "x" * 24
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Desk:
    """The desk with a metrics token, and the same desk (same database) without one."""

    def __init__(self, tmp: Path) -> None:
        self.redis_url = shared_redis_url()
        self.list = f"desk:test:metrics:{uuid.uuid4().hex[:8]}"
        env = desk_env(
            f"sqlite:///{tmp / 'desk.sqlite3'}", DESK_METRICS_TOKEN=TOKEN,
            DESK_REDIS_URL=self.redis_url, DESK_REDIS_CHANNEL=self.list + ":live",
            # Teleforge's lists on the same Redis; its API is never called here.
            DESK_TELEFORGE_URL="http://127.0.0.1:9", DESK_TELEFORGE_LISTS=self.list,
        )
        prepare(env, PASSWORD)
        self.env = env
        self.server = LiveServer(env)
        self.redis = redis.Redis.from_url(self.redis_url)

    def close(self) -> None:
        self.server.stop()
        self.redis.delete(self.list, self.list + ":dead")
        self.redis.close()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    running = Desk(tmp_path_factory.mktemp("metrics"))
    try:
        yield running
    finally:
        running.close()


def scrape(server: LiveServer) -> Samples:
    response = requests.get(server.url + "/metrics", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text[:300]
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            samples[(sample.name, labels)] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(server: LiveServer, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``check`` holds: background threads update some numbers after the
    request that caused them has been answered."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(server)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; the last scrape: {samples}")
        time.sleep(0.1)


def test_metrics_want_the_token_and_are_not_there_without_one(desk: Desk) -> None:
    url = desk.server.url + "/metrics"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(url, headers={"Authorization": "Bearer " + TOKEN[:-1] + "y"},
                         timeout=10)
    assert wrong.status_code == 401 and "desk_" not in wrong.text
    right = requests.get(url, headers={"Authorization": "Bearer " + TOKEN}, timeout=10)
    assert right.status_code == 200
    assert right.headers["Content-Type"].startswith("text/plain")
    assert right.headers["Cache-Control"] == "no-store"
    for name in ("desk_webhooks_total", "desk_ingest_seconds", "desk_boards_open",
                 "desk_live_queue_depth", "desk_live_board_backlog_max",
                 "desk_live_batch_changes", "desk_live_fanout_lag_seconds", "desk_redis_up",
                 "desk_teleforge_listener_up", "desk_teleforge_set_aside",
                 "process_resident_memory_bytes"):
        assert f"# TYPE {name} " in right.text, name
    pids = {line.split('pid="', 1)[1].split('"', 1)[0]
            for line in right.text.splitlines() if line and not line.startswith("#")}
    assert len(pids) == 1 and pids != {str(desk.server.proc.pid)}  # the worker's, one

    without = LiveServer({k: v for k, v in desk.env.items() if k != "DESK_METRICS_TOKEN"})
    try:
        refused = requests.get(without.url + "/metrics", timeout=10,
                               headers={"Authorization": "Bearer " + TOKEN})
        assert refused.status_code == 404
    finally:
        without.stop()


def test_healthz_says_only_ok(desk: Desk) -> None:
    response = requests.get(desk.server.url + "/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    app: Flask = create_app(base_config("postgresql+psycopg://postgres@127.0.0.1:1/none"))
    try:
        response = app.test_client().get("/healthz")
    finally:
        db.dispose()
    assert response.status_code == 503 and response.get_json() == {"ok": False}


def test_a_short_metrics_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least 16"):
        create_app(base_config(f"sqlite:///{tmp_path / 'x.sqlite3'}", DESK_METRICS_TOKEN="short"))


def test_webhooks_are_counted_by_provider_and_outcome(desk: Desk) -> None:
    server = desk.server
    before = scrape(server)
    call = {"event": "IncomingCall", "call_id": "m-1", "from": "022129191999", "to": "0221"}
    assert server.placetel(**call).ok
    after = scrape(server)
    applied = ("desk_webhooks_total", {"provider": "placetel", "status": "applied"})
    assert value(after, applied[0], **applied[1]) == value(before, applied[0], **applied[1]) + 1
    assert value(after, "desk_ingest_seconds_count", provider="placetel") == value(
        before, "desk_ingest_seconds_count", provider="placetel") + 1

    assert server.placetel(**call).ok  # the same delivery again
    assert server.placetel(auth=("placetel", "wrong"), **call).status_code == 401
    assert server.placetel(event="NoSuchEvent", call_id="m-1").status_code == 400
    later = scrape(server)
    for status in ("duplicate", "unauthorized", "rejected"):
        assert value(later, "desk_webhooks_total", provider="placetel", status=status) == value(
            after, "desk_webhooks_total", provider="placetel", status=status) + 1, status
    assert value(later, "desk_webhooks_total", provider="placetel", status="applied") == value(
        after, "desk_webhooks_total", provider="placetel", status="applied")


def test_the_live_hub_and_redis_are_reported(desk: Desk) -> None:
    server = desk.server
    before = scrape(server)
    with server.board(server.login("ann", PASSWORD)) as board:
        board.recv(timeout=5)  # the snapshot
        samples = eventually(server, lambda s: value(s, "desk_redis_up") == 1,
                             "Redis fan-out never reported up")
        assert value(samples, "desk_boards_open") == 1
        assert server.placetel(event="IncomingCall", call_id="m-live", to="0221",
                               **{"from": "0401"}).ok
        recv_until(board, "0401")
        lagged = eventually(
            server, lambda s: value(s, "desk_live_fanout_lag_seconds_count")
            > value(before, "desk_live_fanout_lag_seconds_count"),
            "no fan-out batch was observed")
        assert value(lagged, "desk_live_batch_changes_count") > value(
            before, "desk_live_batch_changes_count")
        assert value(lagged, "desk_live_messages_total") > value(before, "desk_live_messages_total")
    eventually(server, lambda s: value(s, "desk_boards_open") == 0, "the board stayed counted")


def test_the_teleforge_consumer_and_its_dead_letters_are_reported(desk: Desk) -> None:
    server = desk.server
    eventually(server, lambda s: value(s, "desk_teleforge_listener_up") == 1
               and value(s, "desk_teleforge_listener_state", state="ok") == 1,
               "the Teleforge consumer never reported ok")
    before = scrape(server)
    desk.redis.lpush(desk.list, b"not a notification")
    eventually(server, lambda s: value(s, "desk_teleforge_notifications_total", status="rejected")
               == value(before, "desk_teleforge_notifications_total", status="rejected") + 1,
               "the unreadable notification was not counted")
    assert value(before, "desk_teleforge_set_aside") == 0
    desk.redis.lpush(desk.list + ":dead", b'{"reason": "kept by hand for this test"}')
    assert value(scrape(server), "desk_teleforge_set_aside") == 1
