"""Teleforge's call notifications: taken from its Redis LIST and fed to the state machine.

Teleforge pushes a notification per call change onto ``DESK_TELEFORGE_LIST`` (documented
consumption: BRPOP/RPOP, so it pushes on the left and we take from the right). A consumer
here never pops an item outright; it moves it (``BLMOVE``, atomic) onto its own processing
list ``<list>:processing:<consumer id>``, applies it with ``desk.services.ingest`` and
removes it (``LREM``) only after the database committed. So:

* **nothing is lost** if the process dies between taking and committing: the item waits
  in the dead consumer's processing list, and every consumer, on start and every
  ``RECOVER_EVERY`` seconds, moves the items of dead consumers back onto the main list.
  A consumer is dead when no Redis connection carries its client name (``CLIENT LIST``;
  where that command is disabled, when its heartbeat key has expired);
* **each notification is applied once** with several server processes: ``BLMOVE`` hands an
  item to exactly one consumer, and in the rare case an item is handed out twice (a
  consumer thought dead was only slow) the delivery's dedupe key makes the second a no-op;
* a notification the desk cannot read is kept in the event log (``deliveries``, status
  ``rejected``) with an ``Alert`` for supervisors, in one transaction, then removed;
* a Redis or database outage is survived: the consumer backs off (0.25 s doubling to 10 s),
  reconnects, retries the item it holds, and its status is shown on the supervisor board.

Runs as a thread inside each server process (started with the first request, so forking
servers start one per worker) unless ``DESK_TELEFORGE_LISTEN=0``; then
``flask --app app teleforge listen`` runs the same loop in its own process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from desk.extensions import db
from desk.live.changes import mark_changed
from desk.models import Alert, Delivery, utcnow
from desk.providers.teleforge.parse import UnknownNotification, parse_notification
from desk.providers.teleforge.rules import PROVIDER
from desk.services import ingest

log = logging.getLogger(__name__)

CLIENT_PREFIX = "desk-teleforge-"
HEARTBEAT_SECONDS = 30  # fallback liveness when CLIENT LIST is not allowed
RECOVER_EVERY = 30.0
BLOCK_SECONDS = 1.0  # how long one BLMOVE waits; bounds how fast stop() takes effect
MAX_BACKOFF = 10.0


@dataclass
class ListenerStatus:
    """What supervisors are shown: ``state`` is starting | ok | down | stopped."""

    state: str = "starting"
    error: str = ""
    since: datetime | None = None
    applied: int = 0
    rejected: int = 0


def _safe_url(url: str) -> str:
    """The URL without its password, for logs and the status banner."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class TeleforgeListener:
    """One consumer of the notification list. ``run`` loops until ``stop``."""

    def __init__(
        self,
        app: Flask,
        redis_url: str,
        list_name: str,
        consumer_id: str | None = None,
        block_seconds: float = BLOCK_SECONDS,
        client: Any = None,
    ) -> None:
        # ``client``: a ready object with the Redis list commands used here, instead of
        # connecting to ``redis_url`` (the demo's in-process list, desk.simulator).
        self.app = app
        self.redis_url = redis_url
        self.list_name = list_name
        self.consumer_id = consumer_id or uuid.uuid4().hex[:16]
        self.block_seconds = block_seconds
        self.processing = f"{list_name}:processing:{self.consumer_id}"
        self.heartbeat_key = f"{list_name}:consumer:{self.consumer_id}"
        self.status = ListenerStatus(since=utcnow())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._given_client = client
        self._client: Any = client
        self._last_recovery = 0.0
        self._last_beat = 0.0

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

    def _set_status(self, state: str, error: str = "") -> None:
        if (state, error) == (self.status.state, self.status.error):
            return
        was = self.status.state
        self.status.state, self.status.error, self.status.since = state, error, utcnow()
        if state == "down" and was != "down":
            log.warning("Teleforge notifications: %s; retrying with backoff", error)
        elif state == "ok" and was != "ok":
            log.info("Teleforge notifications: taking from %r on %s",
                     self.list_name, _safe_url(self.redis_url))

    # -- Redis -----------------------------------------------------------------------------
    def connect(self) -> Any:
        import redis

        if self._client is None and self._given_client is not None:
            self._client = self._given_client
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=2,
                socket_timeout=self.block_seconds + 5, health_check_interval=15,
                client_name=CLIENT_PREFIX + self.consumer_id,
            )
        return self._client

    def close(self) -> None:
        """Drop the Redis connection (for consumers driven by ``step``, e.g. in tests)."""
        self._disconnect()

    def _disconnect(self) -> None:
        client, self._client = self._client, None
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
        """Move the items of dead consumers back to the main list; returns how many."""
        prefix = f"{self.list_name}:processing:"
        live = self._live_consumers(client)
        moved = 0
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=100):
            name = key.decode() if isinstance(key, bytes) else str(key)
            owner = name[len(prefix):]
            if owner == self.consumer_id:
                continue
            if live is not None:
                if owner in live:
                    continue
            elif client.exists(f"{self.list_name}:consumer:{owner}"):
                continue
            # Newest first onto the taking end, so the oldest is taken first again.
            while client.lmove(name, self.list_name, "LEFT", "RIGHT") is not None:
                moved += 1
        if moved:
            log.warning("Teleforge notifications: recovered %d item(s) a stopped consumer had "
                        "taken but not committed", moved)
        return moved

    def take(self, client: Any) -> bytes | None:
        """The next item to apply: one this consumer still holds, else a new one (blocking)."""
        held = client.lindex(self.processing, -1)
        if held is not None:
            return held
        return client.blmove(self.list_name, self.processing, self.block_seconds,
                             "RIGHT", "LEFT")

    def ack(self, client: Any, raw: bytes) -> None:
        client.lrem(self.processing, -1, raw)

    # -- the database ------------------------------------------------------------------------
    def apply(self, raw: bytes) -> str:
        """Apply one notification, or keep it as rejected with an alert. One transaction.

        Returns "applied", "duplicate" or "rejected". Raises ``SQLAlchemyError`` when the
        database is unavailable (the caller keeps the item and retries).
        """
        parsed = parse_notification(raw, utcnow())
        text = raw.decode("utf-8", errors="backslashreplace")
        content_type = "application/json" if text.lstrip().startswith("{") else None
        with self.app.app_context(), db.new_session() as session:
            if isinstance(parsed, UnknownNotification):
                self._keep_unknown(session, parsed, text, content_type)
                return "rejected"
            result = ingest.ingest(session, PROVIDER, parsed, text, content_type)
            return result.status

    def _keep_unknown(
        self, session: Any, unknown: UnknownNotification, text: str, content_type: str | None
    ) -> None:
        with session.begin():
            delivery = Delivery(
                provider=PROVIDER, kind="unknown",
                provider_call_id=unknown.reference[:255] if unknown.reference else None,
                status="rejected", error=unknown.reason, content_type=content_type,
                payload=text, received_at=utcnow(),
            )
            session.add(delivery)
            session.flush()
            session.add(Alert(
                provider=PROVIDER, kind="unknown_notification",
                message=f"A Teleforge notification could not be read: {unknown.reason}. "
                f"It is kept in the event log (delivery {delivery.id}).",
                delivery_id=delivery.id,
            ))
            mark_changed(session, "alerts", 0)  # supervisors' alert list updates live
        log.warning("Teleforge notification kept as rejected: %s", unknown.reason)

    # -- the loop ----------------------------------------------------------------------------
    def step(self) -> str | None:
        """Take and apply at most one item; returns what happened, None when idle.

        Raises Redis and database errors; ``run`` turns them into status and backoff.
        """
        client = self.connect()
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_SECONDS / 6 or not self._last_beat:
            client.set(self.heartbeat_key, "1", ex=HEARTBEAT_SECONDS)
            self._last_beat = now
        if now - self._last_recovery >= RECOVER_EVERY or not self._last_recovery:
            self.recover(client)
            self._last_recovery = now
        self._set_status("ok")
        raw = self.take(client)
        if raw is None:
            return None
        try:
            outcome = self.apply(raw)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # a bug must not wedge the list behind one item
            log.exception("applying a Teleforge notification failed; keeping it as rejected")
            reason = f"the desk failed to apply it ({exc.__class__.__name__}: {exc})"[:500]
            with self.app.app_context(), db.new_session() as session:
                self._keep_unknown(session, UnknownNotification(raw, reason), raw.decode(
                    "utf-8", errors="backslashreplace"), None)
            outcome = "rejected"
        self.ack(client, raw)
        if outcome == "rejected":
            self.status.rejected += 1
        else:
            self.status.applied += 1
        return outcome

    def run(self) -> None:
        import redis

        backoff = 0.25
        while not self._stop.is_set():
            try:
                self.step()
                backoff = 0.25
            except (redis.RedisError, OSError) as exc:
                self._disconnect()
                self._last_recovery = self._last_beat = 0.0  # again once reconnected
                self._set_status("down", f"Redis at {_safe_url(self.redis_url)} is "
                                 f"unreachable ({exc or exc.__class__.__name__})")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except SQLAlchemyError as exc:
                self._set_status("down", f"the database is unavailable "
                                 f"({exc.__class__.__name__}); the notification is kept")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._disconnect()
        self._set_status("stopped")


def redis_url_for(app: Flask) -> str:
    return app.config.get("DESK_TELEFORGE_REDIS_URL") or app.config.get("DESK_REDIS_URL") or ""


def wanted(app: Flask) -> bool:
    """Whether this desk takes Teleforge notifications at all (Teleforge set up + Redis)."""
    configured = app.config.get("DESK_TELEFORGE_URL") or app.config.get("DESK_TELEFORGE_REDIS_URL")
    return bool(configured and redis_url_for(app))


def init_app(app: Flask) -> None:
    """Create this process's consumer and start it with the first request it serves.

    Not at import or in ``create_app``: a forking server would share one thread between
    workers, and CLI commands must not consume. Tests (``TESTING``) start consumers
    themselves.
    """
    listener = None
    if wanted(app):
        listener = TeleforgeListener(
            app, redis_url_for(app), app.config["DESK_TELEFORGE_LIST"]
        )
    app.extensions["teleforge_listener"] = listener
    if listener is None or not app.config.get("DESK_TELEFORGE_LISTEN") or app.testing:
        return

    @app.before_request
    def _start_listener() -> None:
        listener.ensure_started()


def listener_for(app: Flask) -> TeleforgeListener | None:
    return app.extensions.get("teleforge_listener")
