"""Real servers for tests: the desk under gunicorn (gevent worker, as in production), the one
wait for a spawned server to answer ``/healthz`` (also used by ``scripts/run``'s test and the
benchmarks), and helpers to log in, hold a websocket and post provider webhooks over
loopback HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import requests
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(log: IO[str], chars: int = 6000) -> str:
    """The end of a server's captured output, for a failure message."""
    log.flush()
    log.seek(0)
    return log.read()[-chars:]


def wait_healthy(
    proc: subprocess.Popen[Any], url: str, log: IO[str], *, name: str = "gunicorn",
    timeout: float = 30, ready: Callable[[], bool] = lambda: True,
) -> None:
    """Return once ``url``/healthz answers 200 and ``ready()`` holds; ``RuntimeError`` with
    the end of ``log`` if ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {tail(log)}")
        try:
            if requests.get(url + "/healthz", timeout=5).ok and ready():
                return
        except requests.RequestException:  # not listening yet, or slow on a busy machine
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not come up in {timeout:g}s: {tail(log)}")


# A developer's own .env must not reach a test's desk: neither the desk (DESK_ENV_FILE, read
# by app.py) nor Flask's command line (which reads .env itself) loads one.
NO_ENV_FILE = {"DESK_ENV_FILE": "", "FLASK_SKIP_DOTENV": "1"}


def desk_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env.update(NO_ENV_FILE)
    env.update(
        DESK_SECRET_KEY="test-secret",
        DESK_DATABASE_URL=database_url,
        DESK_PLACETEL_USER="placetel",
        DESK_PLACETEL_PASSWORD="s3cret-pt",
        DESK_COOKIE_SECURE="0",
        DESK_DEMO="0",
        DESK_WS_PING_INTERVAL="5",
        **extra,
    )
    return env


def flask_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env, input=stdin,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def prepare(env: dict[str, str], password: str) -> None:
    """Migrate and create the standard users through the real command line."""
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "users", "create", "ann", "--role", "agent", "--extension", "101",
              "--sip-peer", "777ann@fpbx.de", stdin=password + "\n")
    flask_cli(env, "users", "create", "bob", "--role", "agent", "--extension", "102",
              stdin=password + "\n")
    flask_cli(env, "users", "create", "sue", "--role", "supervisor", "--extension", "100",
              stdin=password + "\n")


@contextmanager
def running_desk(env: dict[str, str], password: str, workers: int = 1) -> Iterator[LiveServer]:
    """Migrate, create the standard users, serve under gunicorn; stop afterwards."""
    prepare(env, password)
    live = LiveServer(env, workers=workers)
    try:
        yield live
    finally:
        live.stop()


class LiveServer:
    """``gunicorn -k gevent app:app`` on a free loopback port."""

    def __init__(self, env: dict[str, str], workers: int = 1, port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()  # a given port: a restart where boards reconnect
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-k", "gevent", "-w", str(workers),
             "--worker-connections", "2000", "-b", f"127.0.0.1:{self.port}",
             "--graceful-timeout", "2", "app:app"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(self.proc, self.url, self.log)
        except RuntimeError:
            self.stop()
            raise

    def output(self) -> str:
        return tail(self.log, 4000)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    # -- clients -----------------------------------------------------------------------
    def login(self, name: str, password: str) -> requests.Session:
        session = requests.Session()
        page = session.get(self.url + "/login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        response = session.post(
            self.url + "/login", data={"name": name, "password": password, "csrf_token": token},
            timeout=5,
        )
        assert response.ok and "/login" not in response.url, response.text[:300]
        return session

    def board(self, session: requests.Session | None, **headers: Any) -> ClientConnection:
        if session is not None:
            headers.setdefault(
                "Cookie", "; ".join(f"{c.name}={c.value}" for c in session.cookies)
            )
        return connect(
            f"ws://127.0.0.1:{self.port}/ws", additional_headers=headers, open_timeout=5
        )

    def placetel(self, auth: tuple[str, str] | None = ("placetel", "s3cret-pt"),
                 **form: str) -> requests.Response:
        return requests.post(self.url + "/webhooks/placetel", data=form, auth=auth, timeout=5)


def recv_until(ws: ClientConnection, needle: str, timeout: float = 5.0) -> str:
    """Frames until one contains ``needle``; fails with what arrived instead."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no frame with {needle!r} in {timeout}s; got {seen!r}"[:2000])
        try:
            frame = ws.recv(timeout=remaining)
        except TimeoutError:
            continue
        assert isinstance(frame, str)
        if needle in frame:
            return frame
        seen.append(frame[:200])
