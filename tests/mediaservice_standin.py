"""A stand-in iotcomms mediaservice: a real HTTP server on loopback.

It answers the REST endpoints the desk calls (checking the RS256 JWT against the desk's
public key), records every request, and — like the real service — sends the callbacks that
follow an action back to the desk over HTTP, signed with the provider's own key:
hangupcall (or hangupcalljwt) → callEvent calledPartyDrop + sessionCompleted;
splitconnection → one callEvent per participant; stoprecording → recordingReady. With no
``desk_url`` it sends no callbacks (a test that only looks at the requests). ``mode`` makes it
refuse (``success: false``), hang past the desk's timeout, or answer 500; ``playback_url``
makes its recording URL point elsewhere. Several stand-ins can play one deployment's hybrid
sites (``siteBaseUrl``).

A supervisor's monitoring leg (the desk answered with ``monitorDestAddr``) is played by
``monitoring_leg`` (callNotify and callAnswered with ``monitoringParticipant: true``) and
``monitoring_leg_drops`` (its callEvent, which the document gives no monitoring flag).
Recordings stopped and started again (pause and resume) are one file each: every
stoprecording sends recordingReady for the file the last startrecording named, or
recordingFailed when that name contains one of ``failing_recordings`` (without a file name
when ``failures_name_no_file``; both are invented edge cases, the document's sample is a
success).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DOMAIN = "customer47.prod-eu-north-1.iotcomms.io"
# A tiny valid WAV file (44-byte header + 0.1 s of silence) served as the recording.
SILENCE_WAV = (
    b"RIFF" + (36 + 800).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    + b"data" + (800).to_bytes(4, "little") + b"\x80" * 800
)


def key_pair() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    claims: dict[str, Any] | None  # the desk's JWT, verified; None when it did not verify


@dataclass
class StandIn:
    desk_url: str
    desk_public_key: str  # verifies the desk's API tokens
    provider_private_key: str  # signs callbacks to the desk
    mode: str = "ok"  # ok | refuse | slow | error
    seen: list[Seen] = field(default_factory=list)
    callbacks: list[tuple[str, dict[str, Any], int, Any]] = field(default_factory=list)
    connection_id: str = "da9ce5c0-c787-11eb-a47c-c9c4e460ef16"
    session_id: str = ""
    slow_seconds: float = 6.0
    playback_url: str | None = None  # what promptfile/{name}/url answers; None: its own /files/
    failing_recordings: set[str] = field(default_factory=set)  # name parts whose upload fails
    failures_name_no_file: bool = False

    def __post_init__(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self._followups: list[threading.Thread] = []

    def stop(self) -> None:
        self.settle()
        self.server.shutdown()
        self.server.server_close()

    # -- the REST API --------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        if h.path.startswith("/files/"):
            self._reply(h, 200, SILENCE_WAV, "audio/wav")
            return
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(token, self.desk_public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            claims = None
        self.seen.append(Seen(method, h.path, body, claims))
        mode, session_id = self.mode, self.session_id  # as things were when it was asked
        if claims is None:
            self._reply(h, 401, {"success": False, "reason": "invalid token"})
            return
        if mode == "slow":  # answers long after the desk gave up, and does nothing else
            time.sleep(self.slow_seconds)
            self._reply(h, 200, {"success": True})
            return
        if mode == "error":
            self._reply(h, 500, {"message": "internal error"})
            return
        if mode == "refuse":
            self._reply(h, 200, {"success": False, "reason": "call not found"})
            return
        endpoint = h.path.split("/", 2)[2] if h.path.count("/") >= 2 else ""
        if endpoint.startswith("promptfile/") and endpoint.endswith("/url"):
            name = endpoint.split("/")[1]
            url = self.playback_url or f"{self.url}/files/{name}"
            self._reply(h, 200, {"success": True, "url": url})
            return
        follow = {
            "hangupcall": self._after_hangup,
            "hangupcalljwt": self._after_hangup,
            "splitconnection": self._after_split,
            "stoprecording": self._after_stop,
        }.get(endpoint)
        thread = None
        # Registered before the answer, so a test can wait for it.
        if follow is not None and self.desk_url:
            thread = threading.Thread(target=follow, args=(session_id,), daemon=True)
            self._followups.append(thread)
        self._reply(h, 200, {"success": True})
        if thread is not None:
            thread.start()

    def settle(self) -> None:
        """Wait until every callback that followed an action has been answered."""
        deadline = time.monotonic() + 10
        for thread in list(self._followups):
            # Started just after the answer is sent: the desk may have answered its own
            # caller before this thread is running.
            while thread.ident is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if thread.ident is not None:
                thread.join(timeout=10)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: Any,
               content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the desk gave up waiting (the "slow" mode): as a real server would see it

    # -- callbacks to the desk -----------------------------------------------------------
    def sign(self) -> str:
        """A fresh callback token: iat now, exp, a unique jti (the desk takes each once)."""
        now = int(time.time())
        return jwt.encode({"iss": "mediaservice", "iat": now, "exp": now + 60,
                           "jti": uuid.uuid4().hex},
                          self.provider_private_key, algorithm="RS256")

    def callback(self, name: str, body: dict[str, Any], signed: bool = True) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.sign()}"} if signed else {}
        response = requests.post(f"{self.desk_url}/webhooks/mediaservice/{name}", json=body,
                                 headers=headers, timeout=5)
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        self.callbacks.append((name, body, response.status_code, answer))
        return response

    def _ref(self, session_id: str | None = None) -> dict[str, str]:
        return {"deskCallId": session_id or self.session_id}

    def _after_hangup(self, session_id: str) -> None:
        time.sleep(0.05)
        self.callback("callEvent", {
            "connectionId": self.connection_id, "domain": DOMAIN, "event": "calledPartyDrop",
            "participantId": "da9cbeb0", "remoteParticipantId": "d93f0370",
            "sessionId": session_id, "sessionReferenceId": self._ref(session_id),
        })
        self.callback("sessionCompleted", {"sessionId": session_id,
                                           "sessionReferenceId": self._ref(session_id)})

    def _after_split(self, session_id: str) -> None:
        time.sleep(0.05)
        for event, participant in (("callerConnectionSplit", "d93f0370"),
                                   ("calleeConnectionSplit", "da9cbeb0")):
            self.callback("callEvent", {
                "connectionId": self.connection_id, "domain": DOMAIN, "event": event,
                "participantId": participant, "sessionId": session_id,
                "sessionReferenceId": self._ref(session_id),
            })

    def _after_stop(self, session_id: str) -> None:
        time.sleep(0.05)
        name = next((s.body.get("recordingFileName") for s in reversed(self.seen)
                     if s.path.endswith("/startrecording") and isinstance(s.body, dict)), None)
        name = name or "unknown.mp3"
        if any(part in name for part in self.failing_recordings):
            failed: dict[str, Any] = {
                "event": "recordingFailed", "connectionId": self.connection_id,
                "reason": "No callee media received", "sessionId": session_id,
                "sessionReferenceId": self._ref(session_id),
            }
            if not self.failures_name_no_file:
                failed["recordingFileName"] = name
            self.callback("recordingReady", failed)
            return
        self.callback("recordingReady", {
            "event": "recordingSuccessful", "connectionId": self.connection_id,
            "recordingFileName": name, "fileSize": len(SILENCE_WAV),
            "sessionId": session_id, "sessionReferenceId": self._ref(session_id),
        })

    # -- a call arriving -----------------------------------------------------------------
    def incoming_call(self, caller: str = "46890510", called: str = "46890200") -> dict:
        """newCall → callNotify ringing → callAnswered, as the provider sends them.
        Returns the desk's answer to newCall."""
        self.session_id = f"sess-{uuid.uuid4().hex[:12]}"
        answer = self.callback("newCall", {
            "sessionId": self.session_id, "callingParty": caller, "calledParty": called,
            "fromUser": caller, "sipCallId": f"{uuid.uuid4()}@pbx",
        }).json()
        self.callback("callNotify", {
            "event": "ringing", "sessionId": self.session_id, "user": caller,
            "remoteUser": called, "participantId": "da9cbeb0",
            "sessionReferenceId": self._ref(),
        })
        return answer

    def answered(self, caller: str = "46890510", agent_user: str = "101", **extra: Any) -> None:
        """callAnswered for the current session; ``extra`` adds fields (``siteBaseUrl``)."""
        self.callback("callAnswered", {
            "callingPartyNumber": int(caller), "callerParticipantId": "d93f0370",
            "calleeParticipantId": "da9cbeb0", "remotePartyNumber": agent_user,
            "connectionId": self.connection_id, "monitoringParticipant": False,
            "replyId": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.reply." + self.session_id,
            "sessionReferenceId": self._ref(), "traceId": "d9b15290-fa96", **extra,
        })

    # -- a supervisor listening in -------------------------------------------------------
    def monitoring_leg(self, listener_user: str, leg: str = "mon-5e1f") -> requests.Response:
        """The silent leg to ``monitorDestAddr`` rings and answers: callNotify ringing and
        callAnswered, both ``monitoringParticipant: true``; ``remotePartyNumber`` is the
        user part of the address it rang. Returns the callAnswered's response."""
        self.callback("callNotify", {
            "event": "ringing", "monitoringParticipant": True, "sessionId": self.session_id,
            "user": "46890510", "remoteUser": listener_user, "participantId": "d93f0370",
            "remoteParticipantId": leg, "sessionReferenceId": self._ref(),
        })
        return self.callback("callAnswered", {
            "callingPartyNumber": 46890510, "callerParticipantId": "d93f0370",
            "calleeParticipantId": leg, "remotePartyNumber": listener_user,
            "connectionId": "mon-conn-" + leg, "monitoringParticipant": True,
            "replyId": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.monitor." + self.session_id,
            "sessionReferenceId": self._ref(), "traceId": "d9b15290-fa96",
        })

    def monitoring_leg_drops(self, leg: str = "mon-5e1f", event: str = "calledPartyDrop",
                             **extra: Any) -> requests.Response:
        """The supervisor hangs up the silent leg: a callEvent about its participant."""
        return self.callback("callEvent", {
            "connectionId": "mon-conn-" + leg, "domain": DOMAIN, "event": event,
            "participantId": leg, "remoteParticipantId": "d93f0370",
            "sessionId": self.session_id, "sessionReferenceId": self._ref(), **extra,
        })
