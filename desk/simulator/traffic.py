"""Simulated inbound calls: Placetel notify sequences, mediaservice sessions, Stringee events.

``Traffic`` starts calls at a rate (calls per minute, Poisson arrivals) and plays each one
in its own thread, over real HTTP against the desk's real webhooks, with the providers'
real authentication when the desk has it configured (Placetel Basic credentials in the URL,
Stringee's ``?token=``, mediaservice callbacks signed with the provider's key). The same
class feeds the demo desk from inside (``desk.simulator.demo``) and any running desk from
``flask --app app simulate``.

The mix is a call centre's: most calls answered, some missed, sent to voicemail or blocked,
a few long. Only mediaservice calls ring the desk's own agents (the desk's answer to
``newCall`` says whom; the simulated phone answers as that agent), because only they carry
the Hang up / Split / Record buttons. Placetel numbers are simulated as Notify-only and
Stringee's as routed to an app user in Stringee's portal: both are answered by colleagues
outside the desk and show in the queue, so they never keep the demo agent busy.
``speed`` divides every wait, for load tests and quick checks.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from desk.providers.mediaservice.simulator import (
    Callbacks,
    ReplyToken,
    SessionBook,
    count,
    new_id,
    party,
)

log = logging.getLogger(__name__)

PROVIDERS = ("mediaservice", "placetel", "stringee")
WEIGHTS = {"mediaservice": 0.45, "placetel": 0.35, "stringee": 0.2}
PLACETEL_COLLEAGUES = ("777reception@fpbx.de", "777sales@fpbx.de", "777support@fpbx.de")
PLACETEL_NUMBERS = ("02219876500", "02219876510")
MEDIASERVICE_NUMBERS = ("46890200", "46890210")
STRINGEE_NUMBER = "842471001234"
STRINGEE_APP_USERS = ("hotline-1", "hotline-2")


@dataclass
class Auth:
    """The credentials the real providers would present to this desk."""

    placetel: tuple[str, str] | None = None
    stringee_token: str | None = None
    mediaservice_key_pem: str | None = None  # the provider's private key


@dataclass
class Traffic:
    """Calls at ``rate`` per minute into the desk at ``desk_url`` until ``stop`` is set."""

    desk_url: str
    rate: float
    stop: threading.Event = field(default_factory=threading.Event)
    auth: Auth = field(default_factory=Auth)
    book: SessionBook = field(default_factory=SessionBook)
    providers: tuple[str, ...] = PROVIDERS
    speed: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    stats: dict[str, int] = field(default_factory=dict)  # HTTP status (or "unreachable") → n
    errors: list[str] = field(default_factory=list)  # the first few refusals, to show people

    def __post_init__(self) -> None:
        self.desk_url = self.desk_url.rstrip("/")
        self.callbacks = Callbacks(self.desk_url, self.auth.mediaservice_key_pem, self.stats)
        self._threads: list[threading.Thread] = []

    # -- running ---------------------------------------------------------------------------
    def run(self, calls: int | None = None, first_after: float = 1.0) -> None:
        """Start calls until stopped (or ``calls`` have started, then wait for them to end).

        At a rate of one a minute or more the first call comes after ``first_after`` seconds,
        so a newcomer sees one at once; below that, arrivals are random from the start.
        """
        delay = min(first_after, 60.0 / self.rate) if self.rate >= 1 else \
            self.rng.expovariate(self.rate / 60.0)
        started = 0
        while not self.stop.wait(delay):
            self.start_call()
            started += 1
            if calls is not None and started >= calls:
                break
            delay = self.rng.expovariate(self.rate / 60.0)
        for thread in self._threads:
            thread.join()

    def start_call(self, provider: str | None = None, outcome: str | None = None) -> None:
        """One call in its own thread: ``provider`` and ``outcome`` drawn when not given."""
        if provider is None:
            weights = [WEIGHTS[name] for name in self.providers]
            provider = self.rng.choices(self.providers, weights)[0]
        play: Callable[[str | None], None] = getattr(self, f"_{provider}")
        thread = threading.Thread(target=self._guarded, args=(play, outcome), daemon=True,
                                  name=f"sim-{provider}-call")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _guarded(self, play: Callable[[str | None], None], outcome: str | None) -> None:
        try:
            play(outcome)
        except Exception:  # one broken call must not stop the traffic
            log.exception("simulated call failed")

    def wait(self, seconds: float) -> bool:
        """Sleep (scaled by ``speed``); True when the traffic is being stopped."""
        return self.stop.wait(seconds / self.speed)

    def _pick(self, outcomes: dict[str, float], outcome: str | None) -> str:
        if outcome is not None:
            if outcome not in outcomes:
                raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(outcomes)}")
            return outcome
        return self.rng.choices(list(outcomes), list(outcomes.values()))[0]

    def _talk(self, long: bool) -> float:
        return self.rng.uniform(360, 720) if long else self.rng.uniform(45, 240)

    def _record(self, path: str, response: requests.Response | None) -> None:
        if response is None:
            count(self.stats, "unreachable")
            return
        count(self.stats, str(response.status_code))
        if not response.ok and len(self.errors) < 5:
            self.errors.append(f"{response.status_code} from {path}: {response.text[:200]}")

    def _post(self, path: str, **kwargs: Any) -> requests.Response | None:
        try:
            response = requests.post(self.desk_url + path, timeout=10, **kwargs)
        except requests.RequestException as exc:
            log.warning("simulated traffic: %s unreachable: %s", path, exc)
            response = None
        self._record(path, response)
        return response

    # -- Placetel: IncomingCall, CallAccepted, HungUp (form-encoded) ------------------------
    def _placetel(self, outcome: str | None) -> None:
        kind = self._pick({"answered": 0.5, "long": 0.05, "missed": 0.2, "voicemail": 0.15,
                           "blocked": 0.1}, outcome)
        call_id = hashlib.sha256(uuid.uuid4().bytes).hexdigest()  # Placetel's ids: SHA-256
        caller = "anonymous" if kind == "blocked" else f"0{self.rng.randint(150, 179)}" \
            f"{self.rng.randint(1000000, 9999999)}"
        call = {"call_id": call_id, "from": caller, "to": self.rng.choice(PLACETEL_NUMBERS)}
        auth = self.auth.placetel

        def notify(event: str, **extra: Any) -> None:
            self._post("/webhooks/placetel", data={"event": event, **call, **extra}, auth=auth)

        notify("IncomingCall")
        if kind == "blocked":
            if not self.wait(0.5):
                notify("HungUp", type="blocked", duration="0")
            return
        if kind in ("answered", "long"):
            if self.wait(self.rng.uniform(3, 12)):
                return
            notify("CallAccepted", peer=self.rng.choice(PLACETEL_COLLEAGUES))
            talk = self._talk(kind == "long")
            if not self.wait(talk):
                notify("HungUp", type="accepted", duration=str(int(talk)))
            return
        if not self.wait(self.rng.uniform(10, 25)):
            notify("HungUp", type=kind, duration="0")

    # -- Stringee: created, ringing, answered, ended (JSON to the event URL) ---------------
    def _stringee(self, outcome: str | None) -> None:
        kind = self._pick({"answered": 0.7, "long": 0.05, "missed": 0.25}, outcome)
        call_id = f"call-vn-1-{uuid.uuid4().hex[:10].upper()}-{int(time.time() * 1000)}"
        caller = f"849{self.rng.randint(10000000, 99999999)}"
        user = self.rng.choice(STRINGEE_APP_USERS)
        path = "/webhooks/stringee/events"
        if self.auth.stringee_token:
            path += f"?token={self.auth.stringee_token}"
        started = time.time()

        def event(status: str, **extra: Any) -> None:
            self._post(path, json={
                "call_id": call_id, "call_status": status, "project_id": 25,
                "timestamp_ms": int(time.time() * 1000), "type": "stringee_call",
                "from": {"number": caller, "alias": caller, "type": "external"},
                "to": {"number": user, "alias": user, "type": "internal"},
                "callCustomData": STRINGEE_NUMBER, **extra,
            })

        event("created")
        if self.wait(0.5):
            return
        event("ringing")
        if kind == "missed":
            if not self.wait(self.rng.uniform(10, 30)):
                event("ended", endCallCause="480 Temporarily Unavailable",
                      duration=int(time.time() - started), answerDuration=0)
            return
        if self.wait(self.rng.uniform(3, 10)):
            return
        event("answered")
        talk = self._talk(kind == "long")
        if not self.wait(talk):
            event("ended", endCallCause="NORMAL_CLEARING", duration=int(time.time() - started),
                  answerDuration=int(talk))

    # -- mediaservice: newCall, callNotify, callAnswered, callEvent, sessionCompleted ------
    def _mediaservice(self, outcome: str | None) -> None:
        kind = self._pick({"answered": 0.75, "long": 0.1, "missed": 0.15}, outcome)
        session_id = str(uuid.uuid4())
        caller = f"46{self.rng.randint(700000000, 799999999)}"
        send = self.callbacks.send
        answer = send("newCall", {
            "sessionId": session_id, "callingParty": caller, "fromUser": caller,
            "calledParty": self.rng.choice(MEDIASERVICE_NUMBERS),
            "sipCallId": f"{uuid.uuid4()}@sbc.demo", "traceId": new_id(),
        })
        ref = {"deskCallId": session_id}
        if not isinstance(answer, dict) or answer.get("action") != "call":
            # Dropped by the desk (nobody free, blocked): the session ends at once.
            if not self.wait(0.5) and self.book.end(session_id):
                send("sessionCompleted", {"sessionId": session_id, "sessionReferenceId": ref,
                                          "reason": str((answer or {}).get("dropCode"))})
            return
        ref = answer.get("sessionReferenceId") or ref
        token = ReplyToken(session_id, str(uuid.uuid4()), caller, new_id(), new_id(),
                           str(answer.get("destAddr")))
        send("callNotify", {
            "event": "ringing", "sessionId": session_id, "user": caller,
            "remoteUser": party(token.agent), "participantId": token.callee_participant_id,
            "sessionReferenceId": ref,
        })
        max_ring = float(answer.get("maxRingTime") or 30)

        def fail(event: str, code: int | None = None, reason: str = "") -> None:
            if not self.book.end(session_id):
                return  # the desk ended it first
            by_caller = event == "callingPartyDrop"
            send("callEvent", {
                "connectionId": token.connection_id, "event": event,
                "participantId": token.caller_participant_id if by_caller
                else token.callee_participant_id,
                "sessionId": session_id, "sessionReferenceId": ref,
                **({"sipResponseCode": code, "sipReason": reason} if code else {}),
            })
            send("sessionCompleted", {"sessionId": session_id, "sessionReferenceId": ref})

        if self.book.phone_busy(token.agent):  # the agent is on another call: 486 at once
            if not self.wait(0.5):
                fail("calledPartyFailure", 486, "Busy Here")
            return
        if kind == "missed":
            # Either the caller gives up, or the agent's phone rings out.
            gives_up = self.rng.random() < 0.5
            if self.wait(self.rng.uniform(5, max_ring) if gives_up else max_ring):
                return
            if gives_up:
                fail("callingPartyDrop")
            else:
                fail("calledPartyFailure", 480, "Temporarily Unavailable")
            return
        ring = self.rng.uniform(2, min(6.0, max_ring))
        if self.wait(ring) or self.book.ended(session_id):
            return
        if not self.book.take_phone(token.agent, session_id):
            # Another call got there first; this one rings on until the caller gives up.
            if not self.wait(max(0.0, max_ring - ring)):
                fail("calledPartyFailure", 480, "Temporarily Unavailable")
            return
        self.callbacks.answered(token, trace_id=new_id())
        deadline = time.monotonic() + self._talk(kind == "long") / self.speed
        while time.monotonic() < deadline:  # until the caller hangs up, or the desk does
            if self.stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                return
            if self.book.ended(session_id):
                return
        if self.book.end(session_id):
            self.callbacks.ended(token, "callingPartyDrop", token.caller_participant_id,
                                 self.book)
