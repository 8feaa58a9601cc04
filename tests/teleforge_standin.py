"""A stand-in Teleforge Click2Dial PBX: a real HTTP server on 127.0.0.1 for tests.

It records every request exactly as it arrived (path, headers, raw body) and answers with
whatever the test scripted: a status and body, or a delay longer than the desk's timeout.
Given a ``version``, it also refuses (422) a dial body that is not the one "Create a Call"
documents for that version: ``{agent, callee, outbound_id, contact_ref}`` from v3.0.0,
``call_ref`` instead before (the refusal's shape is the stand-in's own; Teleforge's is not
documented). Also the helpers tests share for Teleforge: a fresh list name and the
notification fixtures of ``tests/providers/teleforge/fixtures`` as Teleforge pushes them.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "providers" / "teleforge" / "fixtures"


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

    def __init__(self, version: str | None = None) -> None:
        self.received: list[Received] = []
        self.answer = Answer()
        self.version = version
        self._released = threading.Event()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                standin.received.append(
                    Received("POST", self.path, dict(self.headers.items()), body)
                )
                answer = standin.refusal(body) or standin.answer
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

    def refusal(self, body: bytes) -> Answer | None:
        """With a version set: a 422 for a body not of that version's documented keys."""
        if self.version is None:
            return None
        reference = "contact_ref" if int(self.version.split(".")[0]) >= 3 else "call_ref"
        expected = {"agent", "callee", "outbound_id", reference}
        try:
            keys = set(json.loads(body))
        except (ValueError, TypeError):
            return Answer(400, {"error": "expected a JSON object"})
        if keys == expected:
            return None
        errors = {k: "unexpected field" for k in keys - expected}
        errors |= {k: "missing" for k in expected - keys}
        return Answer(422, {"errors": errors})

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


@cache
def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def fixture(name: str) -> dict[str, Any]:
    """A fixture file as stored, ``_source`` included (a fresh copy to change)."""
    return copy.deepcopy(_fixture(name))


def dial_body(name: str) -> dict[str, Any]:
    """A dial-body fixture without its ``_source``: what the desk must post."""
    return {k: v for k, v in fixture(name).items() if k != "_source"}


def item(name: str, now: bool = False, **payload: Any) -> bytes:
    """A notification fixture as Teleforge pushes it (no ``_source``), ``payload`` changed.

    ``now``: a CDR's ``dialed_at`` moved so that the call ends this second (the desk trusts a
    provider's time only near its own clock).
    """
    document = fixture(name)
    document.pop("_source", None)
    if now and "dialed_at" in document["payload"]:
        document["payload"]["dialed_at"] = int(time.time()) - int(
            document["payload"].get("call_time") or 0)
    document["payload"].update(payload)
    return json.dumps(document).encode()
