"""Webhook traffic: the Placetel and mediaservice event mixes and the two ways to send them.

A *mix* is the life of one call as its provider reports it, three deliveries in order:
ringing, answered (by agent ann), ended. Placetel sends form-encoded IncomingCall /
CallAccepted / HungUp with HTTP Basic auth; the mediaservice sends JSON callNotify /
callAnswered / sessionCompleted (samples from ``mediaservice-openapi.txt``) with an RS256
JWT. Every call's caller number is ``bench<tag>-<call>``, which is how the board fleet
recognises the row in a frame.

``closed_loop`` measures how many deliveries per second the server accepts (C callers,
each waits for its answer); ``open_loop`` sends at a fixed rate whatever the server does.
Both run on asyncio + aiohttp in the calling process and return per-delivery records.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

STATES = ("ringing", "talking", "ended")  # what each of a mix's three steps shows on a row
PLACETEL_AUTH = ("placetel", "s3cret-pt")


@dataclass
class Sent:
    call: int
    step: int
    at: float  # time.monotonic() when the request was sent
    seconds: float
    status: int


@dataclass
class SendStats:
    records: list[Sent] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> list[Sent]:
        return [r for r in self.records if 200 <= r.status < 300]

    @property
    def errors(self) -> int:
        return len(self.records) - len(self.ok)

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out


class Mix:
    """One provider's three deliveries for a call. ``request`` → (path, kwargs for aiohttp)."""

    name = "?"

    def request(self, tag: str, call: int, step: int) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError


class PlacetelMix(Mix):
    name = "placetel"

    def __init__(self) -> None:
        user, password = PLACETEL_AUTH
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def request(self, tag: str, call: int, step: int) -> tuple[str, dict[str, Any]]:
        form = {"call_id": f"bench{tag}-{call}", "from": f"bench{tag}-{call}", "to": "0221"}
        if step == 0:
            form["event"] = "IncomingCall"
        elif step == 1:
            form.update(event="CallAccepted", peer="777ann@fpbx.de")
        else:
            form.update(event="HungUp", type="accepted", duration="42")
        return "/webhooks/placetel", {"data": form, "headers": self.headers}


class MediaserviceMix(Mix):
    """Signed like the desk expects (``verify_callback_signature``: RS256 JWT, Bearer), with
    a fresh token (its own ``jti``) on every callback: the desk accepts each token once."""

    name = "mediaservice"

    def __init__(self, private_key_pem: bytes) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        # Parsed once: parsing the PEM costs far more than signing with it.
        self.private_key = load_pem_private_key(private_key_pem, password=None)

    def headers(self) -> dict[str, str]:
        import jwt

        now = int(time.time())
        token = jwt.encode({"iat": now, "exp": now + 280, "jti": uuid.uuid4().hex},
                           self.private_key, algorithm="RS256")
        return {"Authorization": f"Bearer {token}"}

    def request(self, tag: str, call: int, step: int) -> tuple[str, dict[str, Any]]:
        session = f"bench{tag}-{call}"
        reference = {"deskCallId": session}
        if step == 0:
            name, body = "callNotify", {
                "event": "ringing", "monitoringParticipant": False,
                "participantId": str(uuid.uuid4()), "sessionId": session,
                "sessionReferenceId": reference, "user": session, "remoteUser": "0221",
                "remoteParticipantId": str(uuid.uuid4()), "sipCallId": call,
                "ivrServer": "127.0.0.1", "traceId": str(uuid.uuid4()),
            }
        elif step == 1:
            name, body = "callAnswered", {
                "callingPartyNumber": session, "callerParticipantId": str(uuid.uuid4()),
                "calleeParticipantId": str(uuid.uuid4()), "remotePartyNumber": "101",
                "connectionId": str(uuid.uuid4()), "callingPartyExpires": 600,
                "calledPartyExpires": 600, "monitoringParticipant": False,
                "replyId": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.bench",
                "sessionReferenceId": reference, "traceId": str(uuid.uuid4()),
                "httpTransactionId": str(uuid.uuid4()),
            }
        else:
            name, body = "sessionCompleted", {
                "sessionId": session, "domain": "bench.example", "sessionDuration": 42,
                "reason": "completed", "sessionReferenceId": reference,
                "ivrServer": "127.0.0.1", "traceId": str(uuid.uuid4()),
                "httpTransactionId": str(uuid.uuid4()),
            }
        return f"/webhooks/mediaservice/{name}", {"json": body, "headers": self.headers()}


def rsa_keys(folder: Path) -> tuple[Path, bytes]:
    """A fresh RSA key pair: the public key's file (for the desk) and the private key PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = folder / "mediaservice-callback.pub.pem"
    path.write_bytes(public)
    return path, private


async def _post(http: aiohttp.ClientSession, base: str, mix: Mix, tag: str, call: int,
                step: int, stats: SendStats) -> None:
    path, kwargs = mix.request(tag, call, step)
    at = time.monotonic()
    try:
        async with http.post(base + path, **kwargs) as response:
            await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError):
        status = 0  # connection refused / reset / timed out
    stats.records.append(Sent(call, step, at, time.monotonic() - at, status))


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=10),
    )


async def probe(base: str, mix: Mix) -> int:
    """The status one ringing delivery gets: 404 means the route does not exist here."""
    stats = SendStats()
    async with _session(1) as http:
        await _post(http, base, mix, f"probe{uuid.uuid4().hex[:6]}", 0, 0, stats)
    return stats.records[0].status


async def closed_loop(base: str, mix: Mix, tag: str, concurrency: int,
                      seconds: float) -> SendStats:
    """``concurrency`` callers, each sending whole calls (3 deliveries in order) until
    ``seconds`` have passed. Throughput = answered deliveries / elapsed."""
    stats = SendStats(started=time.monotonic())
    deadline = stats.started + seconds
    next_call = 0

    async def caller(http: aiohttp.ClientSession) -> None:
        nonlocal next_call
        while time.monotonic() < deadline:
            call, next_call = next_call, next_call + 1
            for step in range(3):
                if time.monotonic() >= deadline:
                    return
                await _post(http, base, mix, tag, call, step, stats)

    async with _session(concurrency) as http:
        await asyncio.gather(*(caller(http) for _ in range(concurrency)))
    stats.finished = time.monotonic()
    return stats


async def open_loop(base: str, mix: Mix, tag: str, rate: float, seconds: float) -> SendStats:
    """Deliveries at a steady ``rate`` per second for ``seconds``, answered or not (each
    call's three steps follow each other 1/rate seconds apart)."""
    stats = SendStats(started=time.monotonic())
    count = int(rate * seconds)
    async with _session(64) as http:
        tasks = []
        for i in range(count):
            delay = stats.started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            call, step = divmod(i, 3)
            tasks.append(asyncio.create_task(_post(http, base, mix, tag, call, step, stats)))
        await asyncio.gather(*tasks)
    stats.finished = time.monotonic()
    return stats
