"""Teleforge's call notifications: taken from its Redis LISTs and fed to the state machine.

Teleforge pushes its notifications onto several lists on the PBX's Redis (by default
``enigma:notifications:cdr`` and ``enigma:notifications:inbound``, ``DESK_TELEFORGE_LISTS``).
Its pages say "BLPOP for FIFO" while their examples use ``brpop``, and do not say which end
it pushes to; the desk is order-tolerant, so the end it takes from is a setting
(``DESK_TELEFORGE_POP_END``, default right as in the examples). A consumer never pops an
item outright; it moves it (``BLMOVE``, atomic) from that end onto its own processing list
``<list>:processing:<consumer id>``, applies it with ``desk.services.ingest`` and removes
it (``LREM``) only after the database committed. So:

* **nothing is lost** if the process dies between taking and committing: the item waits
  in the dead consumer's processing list, and every consumer, on start and every
  ``RECOVER_EVERY`` seconds, moves the items of dead consumers back onto the taking end of
  the list they came from. A consumer is dead when no Redis connection carries its client
  name (``CLIENT LIST``; where that command is disabled, when its heartbeat key has expired);
* **each notification is applied once** with several server processes: ``BLMOVE`` hands an
  item to exactly one consumer, and in the rare case an item is handed out twice (a
  consumer thought dead was only slow) the delivery's dedupe key makes the second a no-op;
* a notification the desk cannot read is kept in the event log (``deliveries``, status
  ``rejected``) with an ``Alert`` for supervisors, in one transaction, then removed;
* a Redis or database outage is survived: the consumer backs off (0.25 s doubling to 10 s),
  reconnects, retries the item it holds, and its status is shown on the supervisor board.
  An outage is what ``is_outage`` says: SQLAlchemy's ``OperationalError`` (the server is
  gone, SQLite is locked), ``InterfaceError``, a lost connection or a pool timeout;
* **one bad item never wedges a list.** A notification that fails to apply for any other
  reason (PostgreSQL refusing a NUL byte as ``DataError``, an ``IntegrityError``, a bug's
  ``ValueError``) is tried ``DESK_TELEFORGE_MAX_TRIES`` times (default 3; the count is the
  holding consumer's, so a restarted consumer counts again), then **set aside**: pushed onto
  the dead-letter list ``<list>:dead`` (``DEAD_SUFFIX``) as JSON ``{"list", "item" (or
  "item_base64" when it is not UTF-8), "reason", "at" (UTC, ISO 8601), "tries",
  "delivery_id"}``, newest first, kept with a rejected delivery (NUL bytes written as
  ``\\x00``, so any database takes it) and an ``Alert``, and removed from the processing
  list; the consumer goes on with the next item. Supervisors see how many are set aside and
  the latest reasons (``set_aside``). To retry one after a fix, push its ``item`` back onto
  its list and remove the entry (``LREM``).

One consumer takes from every configured list: each list has a lane of its own (its own
connection, blocking ``BLMOVE``, processing list, heartbeat and backoff) running in its own
thread, so a quiet list never delays a busy one. Teleforge asks for exactly one logical
worker per CDR list: every process of one desk together is that worker (they share the
lists through ``BLMOVE``); two different desks must not consume the same lists.

Runs inside each server process (started with the first request, so forking servers start
one per worker) unless ``DESK_TELEFORGE_LISTEN=0``; then ``flask --app app teleforge
listen`` runs the same loop in its own process.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from desk.extensions import db
from desk.live.changes import ALERTS, mark_changed
from desk.models import Alert, Delivery, utcnow
from desk.providers.teleforge.fold import fold_for
from desk.providers.teleforge.parse import UnknownNotification, parse_notification
from desk.providers.teleforge.rules import PROVIDER
from desk.services import ingest

log = logging.getLogger(__name__)

CLIENT_PREFIX = "desk-teleforge-"
HEARTBEAT_SECONDS = 30  # fallback liveness when CLIENT LIST is not allowed
RECOVER_EVERY = 30.0
BLOCK_SECONDS = 1.0  # how long one BLMOVE waits; bounds how fast stop() takes effect
MAX_BACKOFF = 10.0
DEAD_SUFFIX = ":dead"
"""A list's dead-letter list is its name plus this: ``enigma:notifications:cdr:dead``."""
MAX_TRIES = 3
"""Tries before a notification that fails for a reason other than an outage is set aside
(``DESK_TELEFORGE_MAX_TRIES``)."""


@dataclass
class ListenerStatus:
    """What supervisors are shown: ``state`` is starting | ok | down | stopped."""

    state: str = "starting"
    error: str = ""
    since: datetime | None = None
    applied: int = 0
    rejected: int = 0
    set_aside: int = 0  # by this consumer; ``TeleforgeListener.set_aside`` counts them all


@dataclass(frozen=True)
class SetAside:
    """What the dead-letter lists hold: how many items, and the newest few entries (dicts
    as pushed, see the module docstring), newest first."""

    count: int
    latest: tuple[dict[str, Any], ...]


def is_outage(exc: BaseException) -> bool:
    """Whether failing to apply a notification is the database being away (keep the item and
    retry for as long as it takes) rather than something about the item (set it aside)."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def _reason(exc: BaseException) -> str:
    """One line saying why an item failed: the driver's message, without SQLAlchemy's SQL
    and parameters (which would repeat the whole item)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    name = type(exc).__name__
    if type(cause).__name__ != name:  # the driver's finer name too: "IntegrityError (CheckV…)"
        name = f"{name} ({type(cause).__name__})"
    return f"{name}: {lines[0] if lines else '(no message)'}"[:300]


def _storable(text: str) -> str:
    """``text`` for any database: PostgreSQL's text columns refuse NUL, so it is written
    ``\\x00`` (as undecodable bytes are by ``backslashreplace``)."""
    return text.replace("\x00", "\\x00")


def _safe_url(url: str) -> str:
    """The URL without its password, for logs and the status banner."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class _Lane:
    """One list's share of a consumer: its processing list, connection, timers and state."""

    def __init__(self, name: str, consumer_id: str) -> None:
        self.name = name
        self.processing = f"{name}:processing:{consumer_id}"
        self.heartbeat_key = f"{name}:consumer:{consumer_id}"
        self.client: Any = None
        self.last_beat = 0.0
        self.last_recovery = 0.0
        self.state = "starting"
        self.error = ""
        self.dead = name + DEAD_SUFFIX
        self.failing: bytes | None = None  # the held item that failed, and how often
        self.tries = 0

    def failed(self, raw: bytes) -> int:
        """Count one failed try of ``raw``; how many it has had with this consumer."""
        if self.failing != raw:
            self.failing, self.tries = raw, 0
        self.tries += 1
        return self.tries

    def forget(self) -> None:
        self.failing, self.tries = None, 0


class TeleforgeListener:
    """One consumer of Teleforge's notification lists. ``run`` loops until ``stop``.

    ``lists`` is one list name or several. ``pop_end`` is the end items are taken from,
    ``"right"`` or ``"left"``. ``max_tries``: tries before an item that fails for a reason
    other than an outage is set aside (default ``DESK_TELEFORGE_MAX_TRIES``).
    """

    def __init__(
        self,
        app: Flask,
        redis_url: str,
        lists: str | Sequence[str],
        consumer_id: str | None = None,
        block_seconds: float = BLOCK_SECONDS,
        client: Any = None,
        pop_end: str = "right",
        max_tries: int | None = None,
    ) -> None:
        # ``client``: a ready object with the Redis list commands used here, instead of
        # connecting to ``redis_url`` (the demo's in-process list, desk.simulator).
        names = (lists,) if isinstance(lists, str) else tuple(dict.fromkeys(lists))
        if not names or not all(names):
            raise ValueError("a Teleforge listener needs at least one Redis list name")
        if pop_end.lower() not in ("right", "left"):
            raise ValueError(f"pop_end must be 'right' or 'left', not {pop_end!r}")
        self.app = app
        self.redis_url = redis_url
        self.lists = names
        self.pop_end = pop_end.upper()
        self.consumer_id = consumer_id or uuid.uuid4().hex[:16]
        self.block_seconds = block_seconds
        self.max_tries = max(1, int(max_tries if max_tries is not None else
                                    app.config.get("DESK_TELEFORGE_MAX_TRIES") or MAX_TRIES))
        self.status = ListenerStatus(since=utcnow())
        self._lanes = [_Lane(name, self.consumer_id) for name in names]
        self._turn = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._given_client = client
        self._inspector: Any = None  # the connection ``set_aside`` asks on

    @property
    def list_name(self) -> str:
        """The first list (the only one, for a one-list consumer)."""
        return self.lists[0]

    @property
    def processing(self) -> str:
        """The first list's processing list."""
        return self._lanes[0].processing

    def processing_for(self, name: str) -> str:
        return next(lane.processing for lane in self._lanes if lane.name == name)

    # -- life cycle ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the consumer thread once (called on each request; cheap after the first)."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self.run, name="desk-teleforge-listener", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_lane_status(self, lane: _Lane, state: str, error: str = "") -> None:
        """One lane's state; supervisors see the worst of them (down beats ok)."""
        with self._status_lock:
            lane.state, lane.error = state, error
            down = [other for other in self._lanes if other.state == "down"]
            if down:
                overall, message = "down", down[0].error
            elif all(other.state == "stopped" for other in self._lanes):
                overall, message = "stopped", ""
            elif any(other.state == "ok" for other in self._lanes):
                overall, message = "ok", ""
            else:
                overall, message = "starting", ""
            if (overall, message) == (self.status.state, self.status.error):
                return
            was = self.status.state
            self.status.state, self.status.error, self.status.since = overall, message, utcnow()
        if overall == "down" and was != "down":
            log.warning("Teleforge notifications: %s; retrying with backoff", message)
        elif overall == "ok" and was != "ok":
            log.info("Teleforge notifications: taking from %s on %s",
                     ", ".join(repr(name) for name in self.lists), _safe_url(self.redis_url))

    # -- Redis -----------------------------------------------------------------------------
    def _connect(self, lane: _Lane) -> Any:
        import redis

        if lane.client is None:
            lane.client = self._given_client or redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=2,
                socket_timeout=self.block_seconds + 5, health_check_interval=15,
                client_name=CLIENT_PREFIX + self.consumer_id,
            )
        return lane.client

    def connect(self) -> Any:
        """The first lane's connection (tests drive a consumer with it)."""
        return self._connect(self._lanes[0])

    def close(self) -> None:
        """Drop the Redis connections (for consumers driven by ``step``, e.g. in tests)."""
        for lane in self._lanes:
            self._disconnect(lane)
        inspector, self._inspector = self._inspector, None
        if inspector is not None and inspector is not self._given_client:
            inspector.close()

    def _disconnect(self, lane: _Lane) -> None:
        client, lane.client = lane.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a broken connection may fail to close
                log.debug("closing the Redis client failed", exc_info=True)

    def _live_consumers(self, client: Any) -> set[str] | None:
        import redis

        try:
            clients = client.client_list()
        except redis.ResponseError:  # CLIENT is renamed or disabled (managed Redis)
            return None
        return {
            str(c.get("name", ""))[len(CLIENT_PREFIX):]
            for c in clients if str(c.get("name", "")).startswith(CLIENT_PREFIX)
        }

    def recover(self, client: Any) -> int:
        """Move the items of dead consumers back to the lists they came from; how many."""
        live = self._live_consumers(client)
        return sum(self._recover_list(client, name, live) for name in self.lists)

    def _recover_list(self, client: Any, name: str, live: set[str] | None) -> int:
        prefix = f"{name}:processing:"
        moved = 0
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=100):
            held = key.decode() if isinstance(key, bytes) else str(key)
            owner = held[len(prefix):]
            if owner == self.consumer_id:
                continue
            if live is not None:
                if owner in live:
                    continue
            elif client.exists(f"{name}:consumer:{owner}"):
                continue
            # Newest first onto the taking end, so the oldest is taken first again.
            while client.lmove(held, name, "LEFT", self.pop_end) is not None:
                moved += 1
        if moved:
            log.warning("Teleforge notifications: recovered %d item(s) from %r a stopped "
                        "consumer had taken but not committed", moved, name)
        return moved

    def _take(self, client: Any, lane: _Lane, block: bool) -> bytes | None:
        """The lane's next item: one it still holds, else a new one (waiting when ``block``)."""
        held = client.lindex(lane.processing, -1)
        if held is not None:
            return held
        if block:
            return client.blmove(lane.name, lane.processing, self.block_seconds,
                                 self.pop_end, "LEFT")
        return client.lmove(lane.name, lane.processing, self.pop_end, "LEFT")

    def take(self, client: Any) -> bytes | None:
        """The next item from any list (held ones first), moved onto its processing list.

        With one list it waits up to ``block_seconds``; with several it does not wait.
        """
        single = len(self._lanes) == 1
        for lane in self._lanes:
            item = self._take(client, lane, block=single)
            if item is not None:
                return item
        return None

    def ack(self, client: Any, raw: bytes, lane: _Lane | None = None) -> None:
        client.lrem((lane or self._lanes[0]).processing, -1, raw)

    # -- the database ------------------------------------------------------------------------
    def apply(self, raw: bytes) -> str:
        """Apply one notification, or keep it as rejected with an alert. One transaction.

        Returns "applied", "duplicate" or "rejected". Raises when it cannot: an outage
        (``is_outage``: the caller keeps the item and retries) or anything else (the item is
        tried ``max_tries`` times, then set aside).
        """
        parsed = parse_notification(raw, utcnow())
        text = raw.decode("utf-8", errors="backslashreplace")
        content_type = "application/json" if text.lstrip().startswith("{") else None
        with self.app.app_context(), db.new_session() as session:
            if isinstance(parsed, UnknownNotification):
                self._keep_unknown(session, parsed, text, content_type)
                return "rejected"
            result = ingest.ingest(session, PROVIDER, parsed, text, content_type,
                                   fold=fold_for(parsed))
            return result.status

    def _keep_unknown(
        self, session: Any, unknown: UnknownNotification, text: str, content_type: str | None
    ) -> None:
        delivery_id = self._keep_rejected(
            session, "unknown", unknown.reference, unknown.reason, text, content_type,
            "unknown_notification",
            lambda delivery: f"A Teleforge notification could not be read: {unknown.reason}. "
            f"It is kept in the event log (delivery {delivery}).",
        )
        log.warning("Teleforge notification kept as rejected (delivery %s): %s", delivery_id,
                    unknown.reason)

    @staticmethod
    def _keep_rejected(
        session: Any, kind: str, reference: str | None, error: str, text: str,
        content_type: str | None, alert_kind: str, message: Callable[[int], str],
    ) -> int:
        """A rejected delivery and its alert (``message(delivery id)``), in one transaction."""
        with session.begin():
            delivery = Delivery(
                provider=PROVIDER, kind=kind,
                provider_call_id=reference[:255] if reference else None,
                status="rejected", error=error, content_type=content_type,
                payload=text, received_at=utcnow(),
            )
            session.add(delivery)
            session.flush()
            session.add(Alert(provider=PROVIDER, kind=alert_kind,
                              message=message(delivery.id), delivery_id=delivery.id))
            mark_changed(session, ALERTS, 0)  # supervisors' alert list updates live
            return int(delivery.id)

    # -- items that fail to apply ------------------------------------------------------------
    def _failed(self, client: Any, lane: _Lane, raw: bytes, exc: BaseException) -> str:
        """A try of ``raw`` failed, not for an outage: "failed" (it is kept and tried again)
        or, at the ``max_tries``-th failure, "set aside"."""
        reason = _reason(exc)
        tries = lane.failed(raw)
        if tries < self.max_tries:
            log.warning("applying a Teleforge notification from %r failed (try %d of %d), "
                        "trying again: %s", lane.name, tries, self.max_tries, reason,
                        exc_info=exc)
            return "failed"
        self._set_aside(client, lane, raw, reason, tries)
        lane.forget()
        with self._status_lock:
            self.status.set_aside += 1
        return "set aside"

    def _set_aside(self, client: Any, lane: _Lane, raw: bytes, reason: str, tries: int) -> None:
        """Keep ``raw`` in the event log and on ``lane.dead``, then drop it from processing.

        The delivery first, the dead-letter entry second, the removal last: a consumer that
        dies in between leaves the item to be tried again, never lost (at worst it is set
        aside twice). An outage while keeping the delivery propagates, like one while applying.
        """
        text = raw.decode("utf-8", errors="backslashreplace")
        parsed = parse_notification(raw, utcnow())
        if isinstance(parsed, UnknownNotification):
            kind, reference = "unknown", parsed.reference
        else:
            kind, reference = parsed.kind, parsed.provider_call_id
        message = (f"could not be applied after {tries} tries ({_storable(reason)}); it is set "
                   f"aside on the Redis list {lane.dead}")
        delivery_id: int | None = None
        try:
            with self.app.app_context(), db.new_session() as session:
                delivery_id = self._keep_rejected(
                    session, kind, _storable(reference or "") or None, _storable(reason),
                    _storable(text), "application/json" if text.lstrip().startswith("{")
                    else None, "notification_set_aside",
                    lambda delivery: f"A Teleforge notification {message} and kept in the "
                    f"event log (delivery {delivery}).",
                )
        except Exception as exc:
            if is_outage(exc):
                raise
            # The list must move on even if the database refuses this record too.
            log.exception("keeping a set-aside Teleforge notification in the event log failed")
        entry: dict[str, Any] = {"list": lane.name, "reason": reason,
                                 "at": utcnow().isoformat(), "tries": tries,
                                 "delivery_id": delivery_id}
        try:
            entry["item"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            entry["item_base64"] = base64.b64encode(raw).decode()
        client.lpush(lane.dead, json.dumps(entry, ensure_ascii=False))
        self.ack(client, raw, lane)
        log.error("Teleforge notification from %r %s (delivery %s)", lane.name, message,
                  delivery_id)

    def set_aside(self, latest: int = 3) -> SetAside | None:
        """What every list's ``<list>:dead`` holds: the count and the ``latest`` newest
        entries. None when Redis cannot be asked (its outage is shown by ``status``)."""
        import redis

        if self.running and self.status.state == "down" and "Redis" in self.status.error:
            return None  # Redis is known to be away: do not make a page wait for its timeout
        try:
            client = self._inspector
            if client is None:
                client = self._inspector = self._given_client or redis.Redis.from_url(
                    self.redis_url, socket_connect_timeout=1, socket_timeout=1)
            count, entries = 0, []
            for lane in self._lanes:
                count += int(client.llen(lane.dead))
                for index in range(latest):
                    raw = client.lindex(lane.dead, index)
                    if raw is None:
                        break
                    entries.append(_entry(raw))
        except (redis.RedisError, OSError, ValueError):
            return None
        entries.sort(key=lambda entry: str(entry.get("at", "")), reverse=True)
        return SetAside(count, tuple(entries[:latest]))

    # -- the loop ----------------------------------------------------------------------------
    def step(self) -> str | None:
        """Take and apply at most one item; returns what happened, None when idle.

        Looks at every list in turn (a different one first each call), without waiting when
        there are several; a one-list consumer waits up to ``block_seconds``. Besides what
        ``apply`` returns: "failed" (the item failed and is kept for another try) and "set
        aside". Raises Redis errors and outages; ``run`` turns them into status and backoff.
        """
        count = len(self._lanes)
        first, self._turn = self._turn, (self._turn + 1) % count
        for offset in range(count):
            outcome = self._step_lane(self._lanes[(first + offset) % count], block=count == 1)
            if outcome is not None:
                return outcome
        return None

    def _step_lane(self, lane: _Lane, block: bool) -> str | None:
        client = self._connect(lane)
        now = time.monotonic()
        if now - lane.last_beat >= HEARTBEAT_SECONDS / 6 or not lane.last_beat:
            client.set(lane.heartbeat_key, "1", ex=HEARTBEAT_SECONDS)
            lane.last_beat = now
        if now - lane.last_recovery >= RECOVER_EVERY or not lane.last_recovery:
            self._recover_list(client, lane.name, self._live_consumers(client))
            lane.last_recovery = now
        self._set_lane_status(lane, "ok")
        raw = self._take(client, lane, block)
        if raw is None:
            return None
        try:
            outcome = self.apply(raw)
        except Exception as exc:
            if is_outage(exc):
                raise
            # Not the database being away but this item (or a bug): bounded tries, so one
            # item never holds up the list behind it.
            return self._failed(client, lane, raw, exc)
        lane.forget()
        self.ack(client, raw, lane)
        with self._status_lock:
            if outcome == "rejected":
                self.status.rejected += 1
            else:
                self.status.applied += 1
        return outcome

    def run(self) -> None:
        """Consume every list until ``stop``: the first in this thread, each other in its own."""
        others = [
            threading.Thread(target=self._run_lane, args=(lane,), daemon=True,
                             name=f"desk-teleforge-listener-{index}")
            for index, lane in enumerate(self._lanes[1:], start=1)
        ]
        for thread in others:
            thread.start()
        self._run_lane(self._lanes[0])
        for thread in others:
            thread.join()

    def _run_lane(self, lane: _Lane) -> None:
        import redis

        backoff = 0.25
        while not self._stop.is_set():
            try:
                if self._step_lane(lane, block=True) == "failed":
                    # A moment before the next try: a conflict with another writer may clear.
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                backoff = 0.25
            except (redis.RedisError, OSError) as exc:
                self._disconnect(lane)
                lane.last_recovery = lane.last_beat = 0.0  # again once reconnected
                self._set_lane_status(lane, "down", f"Redis at {_safe_url(self.redis_url)} is "
                                      f"unreachable ({exc or exc.__class__.__name__})")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except SQLAlchemyError as exc:
                self._set_lane_status(lane, "down", f"the database is unavailable "
                                      f"({exc.__class__.__name__}); the notification is kept")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._disconnect(lane)
        self._set_lane_status(lane, "stopped")


def _entry(raw: Any) -> dict[str, Any]:
    """A dead-letter entry read back; one not written by the desk shows as its text."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        entry = json.loads(text)
    except ValueError:
        entry = None
    return entry if isinstance(entry, dict) else {"reason": text[:300]}


def redis_url_for(app: Flask) -> str:
    return app.config.get("DESK_TELEFORGE_REDIS_URL") or app.config.get("DESK_REDIS_URL") or ""


def lists_for(app: Flask) -> list[str]:
    """The lists this desk consumes (``DESK_TELEFORGE_LISTS`` plus the older alias)."""
    return list(app.config.get("DESK_TELEFORGE_LISTS") or [])


def wanted(app: Flask) -> bool:
    """Whether this desk takes Teleforge notifications at all (Teleforge set up + Redis)."""
    configured = app.config.get("DESK_TELEFORGE_URL") or app.config.get("DESK_TELEFORGE_REDIS_URL")
    return bool(configured and redis_url_for(app) and lists_for(app))


def for_app(app: Flask, redis_url: str | None = None, client: Any = None) -> TeleforgeListener:
    """A consumer of the app's configured lists, from the configured end."""
    return TeleforgeListener(app, redis_url if redis_url is not None else redis_url_for(app),
                             lists_for(app), client=client,
                             pop_end=app.config.get("DESK_TELEFORGE_POP_END") or "right",
                             max_tries=app.config.get("DESK_TELEFORGE_MAX_TRIES"))


def init_app(app: Flask) -> None:
    """Create this process's consumer and start it with the first request it serves.

    Not at import or in ``create_app``: a forking server would share one thread between
    workers, and CLI commands must not consume. Tests (``TESTING``) start consumers
    themselves.
    """
    listener = for_app(app) if wanted(app) else None
    app.extensions["teleforge_listener"] = listener
    if listener is None or not app.config.get("DESK_TELEFORGE_LISTEN") or app.testing:
        return

    @app.before_request
    def _start_listener() -> None:
        listener.ensure_started()


def listener_for(app: Flask) -> TeleforgeListener | None:
    return app.extensions.get("teleforge_listener")
