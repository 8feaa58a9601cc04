"""A simulated iotcomms.io mediaservice: its REST API, and the callbacks it sends the desk.

The REST side (``/simulator/mediaservice/{domain}/...``, blueprint ``bp``) answers what
``desk.providers.mediaservice.MediaserviceClient`` calls — hangupcall (or hangupcalljwt),
hangupparticipant, splitconnection, startrecording, stoprecording, promptfile and
``promptfile/{name}/url`` — after checking the desk's RS256 JWT, and then, like the real
service, tells the desk what happened through its callbacks (``callEvent``,
``sessionCompleted``, ``recordingReady``, ``callNotify`` and ``callAnswered`` for a
transferred caller). ``/files/{name}`` plays the role of the storage a download URL points
at and serves ``desk.simulator.audio``'s WAV.

The callback side (``Callbacks``) is shared with ``desk.simulator.traffic``, which plays the
calls themselves (newCall → callNotify → callAnswered → ...). Whatever a later action needs
to know about a call travels inside its ``replyId`` (``ReplyToken``: a JWT, as the real
replyId is), so the REST side acts on any simulated call, including ones another process
(``flask --app app simulate``) started. ``SessionBook`` remembers what no token carries:
which sessions ended and which connections are being recorded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import jwt
import requests
from flask import Blueprint, Response, current_app, jsonify, request

from desk.providers.mediaservice.signature import mint_callback_token
from desk.simulator.audio import recording_wav

log = logging.getLogger(__name__)

bp = Blueprint("simulator_mediaservice", __name__, url_prefix="/simulator/mediaservice")

DOMAIN = "demo.mediaservice.desk.invalid"
# Signs replyIds. They only need to look and travel like the real (opaque) JWTs.
_REPLY_SECRET = "desk-simulator-reply-id-signing-key"
FOLLOW_UP_DELAY = 0.3  # seconds between the API's answer and the callbacks it causes


@dataclass(frozen=True)
class ReplyToken:
    """What a call's ``replyId`` carries for the simulator (the desk treats it as opaque)."""

    session_id: str
    connection_id: str
    caller: str
    caller_participant_id: str
    callee_participant_id: str
    agent: str  # the SIP address of the party that answered (sip:agent101@desk.demo)

    def encode(self) -> str:
        return jwt.encode({"sim": asdict(self)}, _REPLY_SECRET, algorithm="HS256")

    @classmethod
    def decode(cls, reply_id: Any) -> ReplyToken | None:
        if not isinstance(reply_id, str):
            return None
        try:
            claims = jwt.decode(reply_id, _REPLY_SECRET, algorithms=["HS256"])
            return cls(**claims["sim"])
        except (jwt.PyJWTError, KeyError, TypeError):
            return None


def reference(session_id: str) -> dict[str, str]:
    """The ``sessionReferenceId`` the desk sets on newCall, echoed on later callbacks."""
    return {"deskCallId": session_id}


def party(address: str) -> str:
    """How the service names a SIP party in ``remotePartyNumber``: the address without its
    scheme (``agent101@desk.demo``), which the desk matches against agents' SIP peers."""
    return address.removeprefix("sips:").removeprefix("sip:")


class SessionBook:
    """Sessions that ended, connections being recorded and agents' phones in use, shared by
    the REST side and the calls being played in the same process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended: set[str] = set()
        self._phones: dict[str, str] = {}  # agent's SIP address → the session it is on
        self._recording: dict[str, str] = {}  # connection id → recordingFileName
        self.files: dict[str, int] = {}  # prompt storage: name → size

    def end(self, session_id: str) -> bool:
        """Mark a session ended; False when it had ended already."""
        with self._lock:
            if session_id in self._ended:
                return False
            self._ended.add(session_id)
            self._phones = {a: s for a, s in self._phones.items() if s != session_id}
            return True

    def take_phone(self, address: str, session_id: str) -> bool:
        """The agent's phone picks up this session; False when it is on another call."""
        with self._lock:
            if self._phones.get(address, session_id) != session_id:
                return False
            self._phones[address] = session_id
            return True

    def phone_busy(self, address: str) -> bool:
        with self._lock:
            return address in self._phones

    def hang_up_phone(self, address: str, session_id: str) -> None:
        with self._lock:
            if self._phones.get(address) == session_id:
                del self._phones[address]

    def ended(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._ended

    def start_recording(self, connection_id: str, name: str) -> bool:
        with self._lock:
            if connection_id in self._recording:
                return False
            self._recording[connection_id] = name
            return True

    def stop_recording(self, connection_id: str) -> str | None:
        """The file name recorded on the connection, now stored; None if not recording."""
        with self._lock:
            name = self._recording.pop(connection_id, None)
            if name is not None:
                self.files[name] = len(recording_wav())
            return name


class Callbacks:
    """POSTs callbacks to ``{desk_url}/webhooks/mediaservice/<name>``, signed like the real
    service's when given the provider's private key (the desk checks them with
    ``DESK_MEDIASERVICE_CALLBACK_KEY_FILE``; a demo desk accepts unsigned ones)."""

    def __init__(self, desk_url: str, private_key_pem: str | None = None,
                 stats: dict[str, int] | None = None, timeout: float = 10.0) -> None:
        self.desk_url = desk_url.rstrip("/")
        self.private_key_pem = private_key_pem
        self.stats = stats if stats is not None else {}
        self.timeout = timeout

    def send(self, name: str, body: dict[str, Any]) -> Any:
        """Send one callback; the desk's JSON answer, or None when it did not accept it."""
        headers = {}
        if self.private_key_pem:
            # A fresh token per callback (iat, exp, a unique jti): the desk accepts each once.
            token = mint_callback_token(self.private_key_pem, iss="mediaservice")
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.desk_url}/webhooks/mediaservice/{name}"
        try:
            response = requests.post(url, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            count(self.stats, "unreachable")
            log.warning("simulated mediaservice: %s not delivered: %s", name, exc)
            return None
        count(self.stats, str(response.status_code))
        if not response.ok:
            log.warning("simulated mediaservice: desk answered %s to %s: %s",
                        response.status_code, name, response.text[:200])
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def ended(self, token: ReplyToken, event: str, participant_id: str,
              book: SessionBook) -> None:
        """A party dropped: the callEvent, the recording's file if one was running, then the
        end of the session (the order the real service reports them in)."""
        ref = reference(token.session_id)
        self.send("callEvent", {
            "connectionId": token.connection_id, "domain": DOMAIN, "event": event,
            "participantId": participant_id, "sessionId": token.session_id,
            "sessionReferenceId": ref,
        })
        self.send("sessionCompleted", {"sessionId": token.session_id, "sessionReferenceId": ref,
                                       "reason": "normalClearing"})
        name = book.stop_recording(token.connection_id)
        if name is not None:
            self.recording_ready(token, name)

    def recording_ready(self, token: ReplyToken, name: str) -> None:
        self.send("recordingReady", {
            "event": "recordingSuccessful", "connectionId": token.connection_id,
            "recordingFileName": name, "fileSize": len(recording_wav()),
            "sessionId": token.session_id, "sessionReferenceId": reference(token.session_id),
        })

    def answered(self, token: ReplyToken, trace_id: str) -> Any:
        return self.send("callAnswered", {
            "callingPartyNumber": token.caller,
            "callerParticipantId": token.caller_participant_id,
            "calleeParticipantId": token.callee_participant_id,
            "remotePartyNumber": party(token.agent),
            "connectionId": token.connection_id, "monitoringParticipant": False,
            "replyId": token.encode(), "codec": "PCMA",
            "sessionReferenceId": reference(token.session_id), "traceId": trace_id,
        })


def count(stats: dict[str, int], key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


def new_id() -> str:
    return uuid.uuid4().hex[:8]


# -- the REST API ----------------------------------------------------------------------------


def _state() -> Any:
    """This process's simulators (``desk.simulator.demo.DemoSimulators``)."""
    return current_app.extensions["simulator"]


def _answer(status: int = 200, **body: Any) -> tuple[Response, int]:
    return jsonify(body), status


def _later(work: Any, *args: Any) -> None:
    """Run a follow-up after the API call has been answered, as the real service does."""

    def run() -> None:
        time.sleep(FOLLOW_UP_DELAY)
        try:
            work(*args)
        except Exception:  # a simulator must never take the desk down
            log.exception("simulated mediaservice follow-up failed")

    threading.Thread(target=run, name="sim-mediaservice-followup", daemon=True).start()


@bp.get("/files/<path:name>")
def recording_file(name: str) -> Response:
    """The download URL's target (a pre-signed storage URL at the real service)."""
    return Response(recording_wav(), mimetype="audio/wav",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.route("/<domain>/<path:endpoint>", methods=["GET", "POST"])
def api(domain: str, endpoint: str) -> tuple[Response, int]:
    sim = _state()
    if domain != DOMAIN:
        return _answer(404, success=False, reason=f"unknown domain {domain[:60]!r}")
    token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    try:
        jwt.decode(token, sim.desk_public_key, algorithms=["RS256"])
    except jwt.PyJWTError as exc:
        return _answer(401, success=False, reason=f"invalid token: {exc}")
    body = request.get_json(silent=True) if request.method == "POST" else None
    body = body if isinstance(body, dict) else {}

    if request.method == "GET" and endpoint == "promptfile":
        files = [{"name": name, "size": size} for name, size in sorted(sim.book.files.items())]
        return _answer(success=True, files=files, next=None)
    if request.method == "GET" and endpoint.startswith("promptfile/") and endpoint.endswith("/url"):
        name = endpoint.removeprefix("promptfile/").removesuffix("/url")
        return _answer(success=True, url=f"{sim.base_url}{bp.url_prefix}/files/{name}")
    handler = _ACTIONS.get(endpoint) if request.method == "POST" else None
    if handler is None:
        return _answer(404, success=False, reason=f"unknown endpoint {endpoint[:60]!r}")
    reply = ReplyToken.decode(body.get("replyId"))
    if reply is None:
        return _answer(400, success=False, reason="missing or unknown replyId")
    if sim.book.ended(reply.session_id):
        return _answer(success=False, reason="call not found")
    return handler(sim, reply, body)


def _hangupcall(sim: Any, reply: ReplyToken, body: dict[str, Any]) -> tuple[Response, int]:
    sim.book.end(reply.session_id)
    _later(sim.callbacks.ended, reply, "calledPartyDrop", reply.callee_participant_id, sim.book)
    return _answer(success=True)


def _hangupparticipant(sim: Any, reply: ReplyToken,
                       body: dict[str, Any]) -> tuple[Response, int]:
    participant = body.get("participantId")
    if participant == reply.caller_participant_id:
        event = "callingPartyDrop"
    elif participant == reply.callee_participant_id:
        event = "calledPartyDrop"
    else:
        return _answer(success=False, reason="participant not found")
    sim.book.end(reply.session_id)
    _later(sim.callbacks.ended, reply, event, participant, sim.book)
    return _answer(success=True)


def _splitconnection(sim: Any, reply: ReplyToken, body: dict[str, Any]) -> tuple[Response, int]:
    if body.get("connectionId") != reply.connection_id:
        return _answer(success=False, reason="connection not found")
    _later(_transfer, sim, reply)
    return _answer(success=True)


def _transfer(sim: Any, reply: ReplyToken) -> None:
    """After a split, the desk says where the caller goes; ring and connect them there."""
    name = sim.book.stop_recording(reply.connection_id)
    if name is not None:
        sim.callbacks.recording_ready(reply, name)
    ref = reference(reply.session_id)
    split = {"connectionId": reply.connection_id, "domain": DOMAIN,
             "sessionId": reply.session_id, "sessionReferenceId": ref}
    answer = sim.callbacks.send("callEvent", {**split, "event": "callerConnectionSplit",
                                              "participantId": reply.caller_participant_id})
    sim.callbacks.send("callEvent", {**split, "event": "calleeConnectionSplit",
                                     "participantId": reply.callee_participant_id})
    if not isinstance(answer, dict) or answer.get("action") != "call":
        if sim.book.end(reply.session_id):
            sim.callbacks.send("sessionCompleted", {"sessionId": reply.session_id,
                                                    "sessionReferenceId": ref,
                                                    "reason": "dropped"})
        return
    target = str(answer.get("destAddr"))
    sim.book.hang_up_phone(reply.agent, reply.session_id)  # the agent's leg was split off
    onward = ReplyToken(reply.session_id, str(uuid.uuid4()), reply.caller,
                        reply.caller_participant_id, new_id(), target)
    # As the document's sample: the participant is the caller ("user"), the remote one the
    # party ringing (the next callAnswered's calleeParticipantId).
    sim.callbacks.send("callNotify", {
        "event": "ringing", "sessionId": reply.session_id, "user": reply.caller,
        "remoteUser": party(target), "participantId": onward.caller_participant_id,
        "remoteParticipantId": onward.callee_participant_id, "sessionReferenceId": ref,
    })
    if not sim.stop.wait(2.0) and not sim.book.ended(reply.session_id):
        sim.book.take_phone(target, reply.session_id)
        sim.callbacks.answered(onward, trace_id=new_id())


def _startrecording(sim: Any, reply: ReplyToken, body: dict[str, Any]) -> tuple[Response, int]:
    name = body.get("recordingFileName")
    if not isinstance(name, str) or not name.strip():
        return _answer(400, success=False, reason="missing recordingFileName")
    if not sim.book.start_recording(reply.connection_id, name.strip()):
        return _answer(success=False, reason="already recording")
    return _answer(success=True)


def _stoprecording(sim: Any, reply: ReplyToken, body: dict[str, Any]) -> tuple[Response, int]:
    name = sim.book.stop_recording(reply.connection_id)
    if name is None:
        return _answer(success=False, reason="not recording")
    _later(sim.callbacks.recording_ready, reply, name)
    return _answer(success=True)


_ACTIONS = {
    "hangupcall": _hangupcall,
    "hangupcalljwt": _hangupcall,  # the same endpoint in the *jwt family (DESK_MEDIASERVICE_API)
    "hangupparticipant": _hangupparticipant,
    "splitconnection": _splitconnection,
    "startrecording": _startrecording,
    "stoprecording": _stoprecording,
}
