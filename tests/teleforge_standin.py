"""A stand-in Teleforge Click2Dial PBX: a real HTTP server on 127.0.0.1 for tests.

It records every request exactly as it arrived (path, headers, raw body) and answers with
whatever the test scripted: a status and body, or a delay longer than the desk's timeout.
Also the helpers tests share for Teleforge: a fresh list name and pushing notifications.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: {"status": "queued"})
    delay: float = 0.0  # seconds before answering (longer than the desk's timeout = timeout)
    headers: dict[str, str] = field(default_factory=dict)


class TeleforgeStandIn:
    """``with TeleforgeStandIn() as pbx:`` → ``pbx.url``, ``pbx.received``, ``pbx.answer``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer = Answer()
        self._released = threading.Event()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                standin.received.append(
                    Received("POST", self.path, dict(self.headers.items()), body)
                )
                answer = standin.answer
                if answer.delay:
                    standin._released.wait(answer.delay)
                payload = answer.body if isinstance(answer.body, str | bytes) else json.dumps(
                    answer.body)
                data = payload.encode() if isinstance(payload, str) else payload
                try:
                    self.send_response(answer.status)
                    content_type = "text/plain" if isinstance(answer.body, str | bytes) \
                        else "application/json"
                    self.send_header("Content-Type", content_type)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the desk gave up waiting (the timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TeleforgeStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """Let a delayed answer go now (a test holds a dial open, looks, then releases)."""
        self._released.set()

    @property
    def dials(self) -> list[Received]:
        return [r for r in self.received if r.path == "/click2dial/calls"]


@contextmanager
def teleforge_standin() -> Iterator[TeleforgeStandIn]:
    with TeleforgeStandIn() as pbx:
        yield pbx


def list_name() -> str:
    """A Redis list name no other test uses."""
    return f"desk-test:teleforge:{uuid.uuid4().hex[:12]}"


def notification(reference: str, status: str, **extra: Any) -> bytes:
    """A notification as Teleforge might push it (the format is undocumented)."""
    return json.dumps({"callcontact_ref": reference, "status": status, **extra}).encode()
