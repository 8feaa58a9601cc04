"""The demo desk's simulators in one object: provider clients pointed at them, and start-up.

``DemoSimulators`` is created by ``register_simulators`` when ``DESK_SIMULATE`` is on (never
when a provider is configured). It owns the Teleforge notification list (Redis when the desk
has one, else ``InProcessList``) and the consumer that reads it, the simulated mediaservice's
``SessionBook``, and the inbound ``Traffic``, paced by the agents on shift as
``DeskStaffing`` reads them from the desk's database (unless ``DESK_SIMULATE_RATE`` fixes
the rate).

Nothing runs and nothing is written until ``ensure_started`` is called with the desk's own
address, which the factory does on a server process's first request (not at import, not in
CLI commands, not under ``TESTING``). Only then is the address known, so only then are the
provider settings pointed at the simulators, in ``app.config`` — after ``load_settings``
decided that no provider is configured, so this never counts as one:
``DESK_TELEFORGE_URL`` and ``DESK_MEDIASERVICE_URL`` become the simulators' paths on this
desk, ``DESK_MEDIASERVICE_KEY_FILE`` a key pair generated for this process (the simulator
checks the desk's JWTs with its public half), and ``DESK_MEDIASERVICE_CALLBACK_KEY_FILE`` is
emptied: the simulated mediaservice is the only one, and a demo desk takes unsigned
callbacks, so ``flask --app app simulate`` can feed it too.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from desk.providers.mediaservice import simulator as mediaservice
from desk.providers.mediaservice.simulator import Callbacks, SessionBook
from desk.providers.teleforge import client as teleforge_client
from desk.providers.teleforge import simulator as teleforge
from desk.providers.teleforge.listener import for_app, listener_for, redis_url_for
from desk.simulator.inprocess_list import InProcessList
from desk.simulator.traffic import MEDIASERVICE_NUMBERS, Traffic

log = logging.getLogger(__name__)


def own_address(environ: dict[str, Any], script_root: str = "") -> str:
    """The address this server answers on, as seen from the server itself (loopback when it
    listens on every interface)."""
    host = str(environ.get("SERVER_NAME") or "127.0.0.1")
    if host in ("0.0.0.0", "::", "localhost", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = environ.get("SERVER_PORT") or "80"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}:{port}{script_root}"


class DemoSimulators:
    """This process's simulated Teleforge and mediaservice, and its inbound traffic."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stop = threading.Event()
        self.book = SessionBook()
        self.base_url = ""
        self.desk_public_key = ""
        self.callbacks: Callbacks | None = None
        self.traffic: Traffic | None = None
        self._lock = threading.Lock()
        self._started = False
        self._redis: Any = None
        self.redis_url = redis_url_for(app)
        # The consumer: the one the desk made when Teleforge's Redis is configured, else one
        # on a list in this process (or on DESK_REDIS_URL) — the same class either way.
        existing = listener_for(app)
        if existing is not None:
            self.list: InProcessList | None = None
            self.listener = existing
        else:
            self.list = None if self.redis_url else InProcessList()
            self.listener = for_app(app, self.redis_url or "in-process list", client=self.list)
            app.extensions["teleforge_listener"] = self.listener
        self._own_listener = existing is None

    @property
    def started(self) -> bool:
        return self._started

    def ensure_started(self, base_url: str, traffic: bool = True) -> None:
        """Point the desk at the simulators, start the consumer and the traffic. Once."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._configure(base_url.rstrip("/"))
            listen = self.list is not None or self.app.config["DESK_TELEFORGE_LISTEN"]
            if self._own_listener and listen:
                self.listener.ensure_started()
            config = self.app.config
            if traffic:
                self.traffic = Traffic(
                    self.base_url, config["DESK_SIMULATE_RATE"], stop=self.stop,
                    book=self.book, rng=random.Random(), speed=config["DESK_SIMULATE_SPEED"],
                    staffing=DeskStaffing(self.app), wrap_up=config["DESK_WRAP_UP_SECONDS"],
                )
                threading.Thread(target=self.traffic.run, name="sim-traffic",
                                 daemon=True).start()
            self._started = True
            rate = config["DESK_SIMULATE_RATE"]
            log.info("Simulators on at %s/simulator (Teleforge notifications via %s); %s",
                     self.base_url, "Redis" if self.list is None else "an in-process list",
                     "no simulated calls" if not traffic else
                     f"{rate:.3g} simulated calls a minute" if rate is not None else
                     "simulated calls paced by the agents on shift")

    def _configure(self, base_url: str) -> None:
        self.base_url = base_url
        key_file, self.desk_public_key = _desk_api_key()
        self.app.config.update(
            DESK_TELEFORGE_URL=f"{base_url}{teleforge.bp.url_prefix}",
            DESK_MEDIASERVICE_URL=f"{base_url}{mediaservice.bp.url_prefix}",
            DESK_MEDIASERVICE_DOMAIN=mediaservice.DOMAIN,
            DESK_MEDIASERVICE_KEY_FILE=str(key_file),
            DESK_MEDIASERVICE_CALLBACK_KEY_FILE="",
        )
        teleforge_client.init_app(self.app)  # the Teleforge client, now that it has an address
        self.callbacks = Callbacks(base_url)

    def push_teleforge(self, raw: bytes, name: str) -> None:
        """Push one notification onto list ``name`` the way Teleforge does (LPUSH)."""
        if self.list is not None:
            self.list.lpush(name, raw)
            return
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2,
                                               socket_timeout=5)
        self._redis.lpush(name, raw)

    def shutdown(self) -> None:
        """Stop the traffic and the consumer (tests; a server process just exits)."""
        self.stop.set()
        if self._own_listener:
            self.listener.stop()


class DeskStaffing:
    """The demo desk's agents as its routing sees them, read from its database each time
    the demo's pace asks (``desk.simulator.traffic.Staffing``): who is on shift, and whom a
    mediaservice call arriving now would ring (presence, wrap-up, calls in hand and the
    routing rules all count, exactly as for a real call)."""

    ON_SHIFT = ("available", "wrap-up")

    def __init__(self, app: Flask) -> None:
        self.app = app

    def on_shift(self) -> int:
        from desk.extensions import db
        from desk.services.routing_store import routing_agents

        with self.app.app_context(), db.new_session() as session:
            return sum(1 for agent in routing_agents(session)
                       if agent.sip_peer and agent.presence in self.ON_SHIFT)

    def free(self) -> int:
        from desk.extensions import db
        from desk.services.routing_store import decide_for_call

        with self.app.app_context(), db.new_session() as session:
            decision = decide_for_call(session, None, MEDIASERVICE_NUMBERS[0],
                                       reachable_by="sip_peer")
        return sum(len(step.agents) for step in decision.steps) if decision.action == "ring" \
            else 0


def _desk_api_key() -> tuple[Path, str]:
    """A fresh RSA key pair for this process: the private key's file (the desk signs its API
    calls with it) and the public key (the simulated mediaservice checks them with it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = Path(tempfile.mkdtemp(prefix="desk-simulator-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "desk-api-key.pem"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public.decode()
