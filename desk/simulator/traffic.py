"""Simulated inbound calls: Placetel notify sequences, mediaservice sessions, Stringee events.

``Traffic`` starts calls at a rate (calls per minute, Poisson arrivals) and plays each one
in its own thread, over real HTTP against the desk's real webhooks, with the providers'
real authentication when the desk has it configured (Placetel Basic credentials in the URL,
Stringee's ``?token=``, mediaservice callbacks signed with the provider's key). The same
class feeds the demo desk from inside (``desk.simulator.demo``) and any running desk from
``flask --app app simulate``.

The mix is a healthy call centre's: most calls answered within seconds, a few missed, sent
to voicemail or blocked, some long. Only mediaservice calls ring the desk's own agents (the
desk's answer to ``newCall`` says whom; the simulated phone answers as that agent), because
only they carry the Hang up / Split / Record buttons. Placetel numbers are simulated as
Notify-only and Stringee's as routed to an app user in Stringee's portal: both are answered
by colleagues outside the desk and show in the queue, so they never keep the demo agent busy.
``speed`` divides every wait, for load tests and quick checks.

**The demo's pace** (``rate=None`` with a ``Staffing``, what the demo desk runs): the calls
a minute follow the agents on shift (``demo_rate``), so one agent is not sent a centre's
traffic. Their capacity is what they can take: each agent call holds its agent for its ring
and talk time and then the wrap-up (``DESK_WRAP_UP_SECONDS``), in which the desk offers the
agent nothing; the demo offers them ``OCCUPANCY`` of that. A call for the agents is placed
only while one of them is free and no other call of theirs is still ringing; otherwise the
caller is taken by the colleagues outside the desk (a Placetel or Stringee call), as a
centre's overflow would. So the wallboard shows what a well-staffed centre shows: few calls
abandoned, nearly all answered within seconds. With a fixed ``rate`` (``DESK_SIMULATE_RATE``,
``flask --app app simulate``) calls come at that rate whoever is free.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from desk.domain.routing import DEFAULT_RING_TIME
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
AGENT_PROVIDER = "mediaservice"  # the one whose calls ring the desk's agents

# What becomes of a call of each provider (weights), and its times in seconds. Talk:
# ``TALK`` for an answered call, ``LONG_TALK`` for a long one.
MIXES: dict[str, dict[str, float]] = {
    "placetel": {"answered": 0.72, "long": 0.05, "missed": 0.05, "voicemail": 0.12,
                 "blocked": 0.06},
    "stringee": {"answered": 0.88, "long": 0.05, "missed": 0.07},
    "mediaservice": {"answered": 0.85, "long": 0.08, "missed": 0.07},
}
TALK = (45.0, 240.0)
LONG_TALK = (360.0, 720.0)
AGENT_RING = (2.0, 6.0)  # a mediaservice call rings its agent this long before the answer
CALLER_GIVES_UP = 0.5  # of its missed calls, the share the caller ends (else it rings out)
AGENT_MAX_RING = float(DEFAULT_RING_TIME)  # rings out after the desk's ring time

OCCUPANCY = 0.8
"""Of what the agents on shift can take (their capacity), the share the demo offers them."""


def _mean(bounds: tuple[float, float]) -> float:
    return (bounds[0] + bounds[1]) / 2


def agent_call_seconds(wrap_up: float, speed: float = 1.0) -> float:
    """How long one call for the agents holds an agent on average, in real seconds: its
    ring and talk time (divided by ``speed``), plus ``wrap_up`` after a call they talked on.
    A missed one holds its agent while it rings."""
    mix = MIXES[AGENT_PROVIDER]
    total = sum(mix.values())
    ring = _mean(AGENT_RING)
    missed = CALLER_GIVES_UP * _mean((5.0, AGENT_MAX_RING)) + (1 - CALLER_GIVES_UP) * AGENT_MAX_RING
    talked = (mix["answered"] * (ring + _mean(TALK)) + mix["long"] * (ring + _mean(LONG_TALK))
              + mix["missed"] * missed) / total
    return talked / speed + wrap_up * (mix["answered"] + mix["long"]) / total


def agent_capacity(agents: int, wrap_up: float, speed: float = 1.0) -> float:
    """Calls a minute ``agents`` agents can take at most, one call each at a time."""
    return max(agents, 0) * 60.0 / agent_call_seconds(wrap_up, speed)


def agent_share(weights: Mapping[str, float] | None = None) -> float:
    """The share of all calls drawn as calls for the agents."""
    weights = weights or WEIGHTS
    return weights[AGENT_PROVIDER] / sum(weights.values())


def demo_rate(agents: int, wrap_up: float, speed: float = 1.0) -> float:
    """Calls a minute for a demo desk with ``agents`` agents on shift: the calls for the
    agents among them are ``OCCUPANCY`` of the agents' capacity. With nobody on shift, the
    colleagues' calls of one agent's pace, so a board is never still."""
    if agents <= 0:
        return demo_rate(1, wrap_up, speed) * (1 - agent_share())
    return OCCUPANCY * agent_capacity(agents, wrap_up, speed) / agent_share()


class Staffing(Protocol):
    """The desk's agents as its routing sees them now (the demo desk reads its database)."""

    def on_shift(self) -> int:
        """Agents a mediaservice call could ring: available, on a call or in wrap-up."""

    def free(self) -> int:
        """Agents the desk would ring for a mediaservice call arriving now."""


class _Offer:
    """A call for the agents that is ringing (the demo's pace lets one ring at a time),
    released once it is answered or known not to be, whichever comes first."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock: threading.Lock | None = lock

    def release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()


@dataclass
class Auth:
    """The credentials the real providers would present to this desk."""

    placetel: tuple[str, str] | None = None
    stringee_token: str | None = None
    mediaservice_key_pem: str | None = None  # the provider's private key


@dataclass
class Traffic:
    """Calls at ``rate`` per minute into the desk at ``desk_url`` until ``stop`` is set;
    ``rate`` None: at the demo's pace for the agents ``staffing`` reports (see the module
    docstring), ``wrap_up`` being the desk's wrap-up seconds."""

    desk_url: str
    rate: float | None
    stop: threading.Event = field(default_factory=threading.Event)
    auth: Auth = field(default_factory=Auth)
    book: SessionBook = field(default_factory=SessionBook)
    providers: tuple[str, ...] = PROVIDERS
    speed: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    stats: dict[str, int] = field(default_factory=dict)  # HTTP status (or "unreachable") → n
    errors: list[str] = field(default_factory=list)  # the first few refusals, to show people
    staffing: Staffing | None = None
    wrap_up: float = 0.0

    def __post_init__(self) -> None:
        if self.rate is None and self.staffing is None:
            raise ValueError("the demo's pace (rate None) needs the desk's staffing")
        self.desk_url = self.desk_url.rstrip("/")
        self.callbacks = Callbacks(self.desk_url, self.auth.mediaservice_key_pem, self.stats)
        self._threads: list[threading.Thread] = []
        self._offering = threading.Lock()  # held while a call for the agents rings
        self._on_shift = 0

    @property
    def paced(self) -> bool:
        """At the demo's pace (the agents on shift set it), not at a fixed rate."""
        return self.rate is None

    def current_rate(self) -> float:
        """Calls a minute now: the fixed rate, or the demo's pace for the agents on shift
        (as last seen: ``run`` looks every second)."""
        if self.rate is not None:
            return self.rate
        return demo_rate(self._on_shift, self.wrap_up, self.speed)

    # -- running ---------------------------------------------------------------------------
    def run(self, calls: int | None = None, first_after: float = 1.0) -> None:
        """Start calls until stopped (or ``calls`` have started, then wait for them to end).

        At a rate of one a minute or more, and at the demo's pace, the first call comes
        after ``first_after`` seconds, so a newcomer sees one at once; below that, arrivals
        are random from the start. At the demo's pace an agent coming on shift gets a call
        of their own ``first_after`` seconds later (one they answer), and the pace follows
        the agents.
        """
        if self.paced:
            self._someone_came_on_shift()
        rate = self.current_rate()
        delay = min(first_after, 60.0 / rate) if rate >= 1 or self.paced else \
            self.rng.expovariate(rate / 60.0)
        due = time.monotonic() + delay
        newcomer = False  # the next call is for an agent who just came on shift
        started = 0
        while True:
            wait = max(0.0, due - time.monotonic())
            # At the demo's pace: a look at who is on shift every second (one small query).
            if self.stop.wait(min(1.0, wait) if self.paced else wait):
                break
            if self.paced and self._someone_came_on_shift():
                due, newcomer = min(due, time.monotonic() + first_after), True
            if time.monotonic() < due:
                continue
            # Someone who just logged in is welcome to a call they can answer.
            self.start_call(*((AGENT_PROVIDER, "answered") if newcomer else (None, None)))
            newcomer = False
            started += 1
            if calls is not None and started >= calls:
                break
            due = time.monotonic() + self.rng.expovariate(self.current_rate() / 60.0)
        for thread in self._threads:
            thread.join()

    def _someone_came_on_shift(self) -> bool:
        """Look who is on shift; True when more agents are than last time."""
        assert self.staffing is not None  # only at the demo's pace
        before = self._on_shift
        try:
            self._on_shift = self.staffing.on_shift()
        except Exception:  # the desk's database busy or away: keep the last count
            log.warning("simulated traffic: could not see who is on shift", exc_info=True)
        return self._on_shift > before

    def start_call(self, provider: str | None = None, outcome: str | None = None) -> None:
        """One call in its own thread: ``provider`` and ``outcome`` drawn when not given.

        At the demo's pace a call for the agents is placed only while one of them is free
        and none of their calls is ringing (``_offering``); else the colleagues take it.
        """
        if provider is None:
            weights = [WEIGHTS[name] for name in self.providers]
            provider = self.rng.choices(self.providers, weights)[0]
        offer: _Offer | None = None
        if self.paced and provider == AGENT_PROVIDER:
            offer = self._offer()
            if offer is None:
                others = [name for name in self.providers if name != AGENT_PROVIDER]
                if not others:
                    return  # nobody to take it: the caller is not simulated at all
                provider = self.rng.choices(others, [WEIGHTS[name] for name in others])[0]
        play: Callable[..., None] = getattr(self, f"_{provider}")
        thread = threading.Thread(target=self._guarded, args=(play, outcome, offer),
                                  daemon=True, name=f"sim-{provider}-call")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _offer(self) -> _Offer | None:
        """The right to ring the agents now, when one is free and none is being rung."""
        if not self._offering.acquire(blocking=False):
            return None
        assert self.staffing is not None
        try:
            free = self.staffing.free()
        except Exception:  # the desk's database busy or away: the colleagues take this one
            log.warning("simulated traffic: could not see who is free", exc_info=True)
            free = 0
        if free <= 0:
            self._offering.release()
            return None
        return _Offer(self._offering)

    def _guarded(self, play: Callable[..., None], outcome: str | None,
                 offer: _Offer | None) -> None:
        try:
            if offer is None:
                play(outcome)
            else:
                play(outcome, offer)
        except Exception:  # one broken call must not stop the traffic
            log.exception("simulated call failed")
        finally:
            if offer is not None:
                offer.release()

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
        return self.rng.uniform(*LONG_TALK) if long else self.rng.uniform(*TALK)

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
        kind = self._pick(MIXES["placetel"], outcome)
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
        kind = self._pick(MIXES["stringee"], outcome)
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
    def _mediaservice(self, outcome: str | None, offer: _Offer | None = None) -> None:
        """A call for the desk's agents; ``offer`` (the demo's pace) is released as soon as
        the call is answered or cannot be, so the next one may ring."""
        kind = self._pick(MIXES["mediaservice"], outcome)
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
            gives_up = self.rng.random() < CALLER_GIVES_UP
            if self.wait(self.rng.uniform(5, max_ring) if gives_up else max_ring):
                return
            if gives_up:
                fail("callingPartyDrop")
            else:
                fail("calledPartyFailure", 480, "Temporarily Unavailable")
            return
        ring = self.rng.uniform(AGENT_RING[0], min(AGENT_RING[1], max_ring))
        if self.wait(ring) or self.book.ended(session_id):
            return
        if not self.book.take_phone(token.agent, session_id):
            # Another call got there first; this one rings on until the caller gives up.
            if not self.wait(max(0.0, max_ring - ring)):
                fail("calledPartyFailure", 480, "Temporarily Unavailable")
            return
        self.callbacks.answered(token, trace_id=new_id())
        if offer is not None:
            offer.release()  # the agent is busy now in the desk's eyes: the next may ring
        deadline = time.monotonic() + self._talk(kind == "long") / self.speed
        while time.monotonic() < deadline:  # until the caller hangs up, or the desk does
            if self.stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                return
            if self.book.ended(session_id):
                return
        if self.book.end(session_id):
            self.callbacks.ended(token, "callingPartyDrop", token.caller_participant_id,
                                 self.book)
