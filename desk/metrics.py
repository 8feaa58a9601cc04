"""What the desk tells operators: ``/healthz`` (up or not) and ``/metrics`` (Prometheus).

``/healthz`` answers ``{"ok": true}`` (200) when this process can reach its database, else
``{"ok": false}`` (503), and nothing else: it is unauthenticated, so it names no board
count, host or error. The numbers are on ``/metrics``, which exists only when
``DESK_METRICS_TOKEN`` is set (404 otherwise, like any unknown path) and wants
``Authorization: Bearer <token>`` (401 without it).

Metrics (every sample also carries ``pid``, the worker process that answered, see below):

* ``desk_webhooks_total{provider, status}``: webhook deliveries by how they were answered:
  ``applied``/``duplicate`` (ingested, or already seen), ``answered`` (answered without
  ingesting, e.g. Stringee's answer URL), ``rejected`` (400: unreadable), ``unauthorized``
  (401/403), ``unknown`` (404), ``too_large`` (413), ``refused`` (other 4xx), ``error``
  (5xx). Counted once per request after its answer, so a refusal raised anywhere in a
  provider's view counts too; ``desk.providers.webhook.apply`` says which ingests applied.
* ``desk_ingest_seconds{provider}``: the ingest transaction of a delivery (histogram).
* ``desk_boards_open``; ``desk_live_queue_depth`` (committed changes waiting for the
  dispatcher); ``desk_live_board_backlog_max`` (updates waiting for the slowest board);
  ``desk_live_batch_changes`` (changes merged into one render, histogram);
  ``desk_live_fanout_lag_seconds`` (from a change's hand-over to every board's outbox,
  histogram); ``desk_live_messages_total`` (messages queued for boards).
* ``desk_redis_up`` (with ``DESK_REDIS_URL``): 1 while live fan-out reaches Redis.
* With Teleforge's lists configured: ``desk_teleforge_set_aside`` (notifications on the
  ``<list>:dead`` lists, read from Redis at scrape time); and, when this process consumes
  them (``DESK_TELEFORGE_LISTEN`` on), ``desk_teleforge_listener_up``,
  ``desk_teleforge_listener_state{state}`` and ``desk_teleforge_notifications_total{status}``
  (``applied``, ``rejected``, ``set_aside``).
* ``process_*`` and ``python_info`` from prometheus-client.

**Several worker processes.** Each gunicorn worker keeps its own numbers and a scrape is
answered by whichever worker accepts the connection. The ``pid`` label keeps each worker's
series apart (so a counter never seems to go backwards when the next scrape reaches the
other worker); sum over it in queries (README, "Metrics"). No shared state between workers
is needed, unlike prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, Response, abort, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from desk.extensions import db, hub
from desk.settings import SettingsError

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
LISTENER_STATES = ("starting", "ok", "down", "stopped")

# Process-wide, like the hub they watch; each app's registry (``register_metrics``) lists
# them, so tests can build many apps in one process.
WEBHOOKS = Counter(
    "desk_webhooks", "Webhook deliveries, by provider and how they were answered.",
    ["provider", "status"], registry=None,
)
INGEST_SECONDS = Histogram(
    "desk_ingest_seconds", "Seconds to ingest one webhook delivery (one transaction).",
    ["provider"], registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_CHANGES = Histogram(
    "desk_live_batch_changes", "Committed changes merged into one live render.",
    registry=None, buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
FANOUT_LAG = Histogram(
    "desk_live_fanout_lag_seconds",
    "Seconds from a change's hand-over to the hub until it waits in every board's outbox.",
    registry=None,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_STATUS_BY_CODE = {400: "rejected", 422: "rejected", 401: "unauthorized", 403: "unauthorized",
                   404: "unknown", 413: "too_large"}


# -- what the rest of the desk calls --------------------------------------------------------


def ingest_timer(provider: str) -> Any:
    """A context manager timing one delivery's ingest (``desk.providers.webhook.apply``)."""
    return INGEST_SECONDS.labels(provider).time()


def webhook_ingested(status: str) -> None:
    """This request's delivery was ingested with ``status`` (``applied`` or ``duplicate``)."""
    g.webhook_outcome = status


def webhook_status(code: int, ingested: str | None) -> str:
    """The ``status`` label for a webhook answered with HTTP ``code``."""
    if code >= 500:
        return "error"  # even after ingesting: the provider saw a failure and will retry
    if ingested:
        return ingested
    if code < 400:
        return "answered"
    return _STATUS_BY_CODE.get(code, "refused")


def _observe_batch(changes: int, lag: float) -> None:
    BATCH_CHANGES.observe(changes)
    FANOUT_LAG.observe(lag)


# -- collection ------------------------------------------------------------------------------


class _DeskState(Collector):
    """This process's live state, read at scrape time (nothing is kept in between)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("desk_boards_open", "Boards (websockets) open on this process.",
                                value=hub.board_count())
        yield GaugeMetricFamily("desk_live_queue_depth",
                                "Committed changes waiting for the live dispatcher.",
                                value=hub.queue_depth())
        yield GaugeMetricFamily("desk_live_board_backlog_max",
                                "Updates waiting to be sent to the slowest open board.",
                                value=hub.largest_backlog())
        yield CounterMetricFamily("desk_live_messages", "Messages queued for open boards.",
                                  value=hub.delivered)
        yield CounterMetricFamily(
            "desk_live_caught_up",
            "Committed changes this process read from the live change sequence in the "
            "database because Redis had not brought them (down, lost, a peer killed).",
            value=hub.caught_up)
        yield CounterMetricFamily("desk_live_render_failures",
                                  "Live update renders that failed and were retried.",
                                  value=hub.render_failures)
        if hub.redis_ok is not None:
            yield GaugeMetricFamily("desk_redis_up",
                                    "1 while live fan-out reaches Redis (DESK_REDIS_URL).",
                                    value=1 if hub.redis_ok else 0)
        yield from self._teleforge()

    def _teleforge(self) -> Iterator[Metric]:
        from desk.providers.teleforge.listener import listener_for

        listener = listener_for(self.app)
        if listener is None:
            return  # Teleforge's lists are not configured
        # The dead-letter lists live in Redis: the same count whoever consumes.
        held = listener.set_aside(latest=0)
        if held is not None:  # None: Redis cannot be asked (the state below says so)
            yield GaugeMetricFamily("desk_teleforge_set_aside",
                                    "Teleforge notifications set aside on <list>:dead.",
                                    value=held.count)
        if not self.app.config.get("DESK_TELEFORGE_LISTEN"):
            return  # consumed by `flask teleforge listen`, in another process
        status = listener.status
        up = listener.running and status.state == "ok"
        yield GaugeMetricFamily("desk_teleforge_listener_up",
                                "1 while this process takes Teleforge's notifications.",
                                value=1 if up else 0)
        state = GaugeMetricFamily("desk_teleforge_listener_state",
                                  "The Teleforge consumer's state (1 for the current one).",
                                  labels=["state"])
        current = status.state if listener.running else "stopped"
        for name in LISTENER_STATES:
            state.add_metric([name], 1 if name == current else 0)
        yield state
        taken = CounterMetricFamily("desk_teleforge_notifications",
                                    "Teleforge notifications taken by this process.",
                                    labels=["status"])
        taken.add_metric(["applied"], status.applied)  # includes duplicates, as ingested
        taken.add_metric(["rejected"], status.rejected)
        taken.add_metric(["set_aside"], status.set_aside)
        yield taken


class _PerProcess(Collector):
    """Every sample of ``collectors`` with a ``pid`` label: which worker answered."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        pid = str(os.getpid())  # read now: a forking server's workers are not the importer
        for collector in self.collectors:
            for family in collector.collect():
                family.samples = [
                    sample._replace(labels={**sample.labels, "pid": pid})
                    for sample in family.samples
                ]
                yield family


def registry_for(app: Flask) -> CollectorRegistry:
    """The registry ``/metrics`` exposes for ``app``."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_PerProcess([
        WEBHOOKS, INGEST_SECONDS, BATCH_CHANGES, FANOUT_LAG, _DeskState(app),
        ProcessCollector(registry=None), PlatformCollector(registry=None),
    ]))
    return registry


# -- the factory's hook ----------------------------------------------------------------------


def _authorised(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def register_metrics(app: Flask) -> None:
    """``/healthz``, ``/metrics`` (404 without ``DESK_METRICS_TOKEN``), webhook counting and
    the live dispatcher's batch observer."""
    token = app.config["DESK_METRICS_TOKEN"]
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise SettingsError(
            f"DESK_METRICS_TOKEN must be at least {MIN_TOKEN_LENGTH} characters; generate one "
            "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    registry = registry_for(app)
    hub.on_batch = _observe_batch
    health = {"ok": True}

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            with db.new_session() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            if health["ok"]:  # log the change, not every probe while it lasts
                log.warning("health check: the database is unreachable (%s)",
                            exc.__class__.__name__)
            health["ok"] = False
            return jsonify(ok=False), 503
        if not health["ok"]:
            log.info("health check: the database is reachable again")
        health["ok"] = True
        return jsonify(ok=True)

    @app.get("/metrics")
    def metrics() -> Any:
        if not token:
            abort(404)
        if not _authorised(token):
            return Response("Send 'Authorization: Bearer <DESK_METRICS_TOKEN>'.\n", 401,
                            {"WWW-Authenticate": 'Bearer realm="Agent Desk metrics"'},
                            content_type="text/plain; charset=utf-8")
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.after_request
    def _count_webhook(response: Response) -> Response:
        # The blueprint, not the path, names the provider: a label never takes a value
        # from the request, so an unknown path cannot add a series.
        blueprint = request.blueprint or ""
        if blueprint.endswith("_webhooks"):
            WEBHOOKS.labels(blueprint.removesuffix("_webhooks"),
                            webhook_status(response.status_code, g.get("webhook_outcome"))).inc()
        return response
