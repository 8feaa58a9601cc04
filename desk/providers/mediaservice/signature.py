"""Callback signatures: is this callback provably from the mediaservice, and sent only once?

The scheme is not publicly documented (the specs README, section "iotcomms.io
mediaservice"); what the desk expects, and refuses otherwise:

* an RS256 JWT in the ``Authorization`` header (``Bearer`` prefix optional), verified with
  the provider's public key (``DESK_MEDIASERVICE_CALLBACK_KEY_FILE``);
* ``iat`` (when it was issued, Unix seconds): **required**, at most
  ``DESK_MEDIASERVICE_TOKEN_MAX_AGE`` seconds old (default 300; 30 s leeway for clocks) and
  not in the future. A token with only a far ``exp`` is refused: it would stay usable for
  as long as ``exp`` says;
* ``exp`` and ``nbf``: enforced when present, not required;
* ``jti`` (a unique id): optional, a non-empty string when present. **Each token is
  accepted once**: by its ``jti`` when it has one, else by its signature (compared as bytes,
  so re-encoding the signature's base64 does not make a new token). The token does not cover
  the body, so a second use could carry any body: a captured token must not buy more than
  the callback it came with. A provider that sent one token with several callbacks would be
  refused after the first; the desk expects a fresh token per callback.

The replay cache (``ReplayCache``) remembers each accepted token until it is too old to be
accepted anyway (``iat`` + max age + leeway, or ``exp`` + leeway if sooner): in Redis
(``SET NX`` with that expiry) when ``DESK_REDIS_URL`` is configured, so every process
shares it; otherwise in the database table ``used_tokens`` (``desk.models.UsedToken``),
whose expired rows are purged as new ones arrive. If Redis fails, the database is used
meanwhile (logged): callbacks keep being answered, and a replay would need a token accepted
just before the outage. ``mint_callback_token`` makes tokens as expected (the simulators).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_public_key,
)

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.datastructures import Headers

log = logging.getLogger(__name__)

MAX_AGE = 300
"""Default oldest ``iat`` accepted, in seconds (``DESK_MEDIASERVICE_TOKEN_MAX_AGE``)."""
LEEWAY = 30
"""Seconds of clock difference tolerated on ``iat``, ``exp`` and ``nbf``."""
REDIS_PREFIX = "desk:mediaservice:used-token:"
PURGE_EVERY = 60.0  # seconds between purges of expired used_tokens rows, per process


class BadSignature(ValueError):
    """The callback is not provably from the mediaservice; answer 401 and store nothing."""


def _public_key(pem: str | bytes) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise ValueError(f"the mediaservice callback key is not a PEM public key: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the mediaservice callback key must be an RSA public key (RS256)")
    return key


def _token(headers: Mapping[str, str] | Headers, header: str) -> str:
    wanted = header.lower()
    token = next((v for k, v in headers.items() if k.lower() == wanted), None) or ""
    token = token.strip()
    if token.lower().split(" ", 1)[0] == "bearer":
        token = token[6:].strip()
    if not token:
        raise BadSignature(f"no {header} header: the callback is not signed")
    return token


def _decode(token: str, key: RSAPublicKey, leeway: int, audience: str | None) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["RS256"], leeway=leeway, audience=audience,
            options={"verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise BadSignature("the callback's signature has expired") from None
    except jwt.PyJWTError as exc:
        raise BadSignature(f"the callback's signature is not valid: {exc}") from None
    return claims


def _check_age(claims: Mapping[str, Any], max_age: int, leeway: int) -> None:
    iat = claims.get("iat")
    if iat is None:
        if claims.get("exp") is None:
            raise BadSignature("the callback's token has neither iat nor exp; refusing replays")
        raise BadSignature("the callback's token has no iat (when it was issued); a token "
                           "with only exp stays usable too long")
    if isinstance(iat, int | float) and time.time() - iat > max_age + leeway:
        raise BadSignature(f"the callback's token is older than {max_age} s")


def verify_callback_signature(
    headers: Mapping[str, str] | Headers,
    public_key_pem: str | bytes,
    *,
    header: str = "Authorization",
    max_age: int | None = MAX_AGE,
    leeway: int = LEEWAY,
    audience: str | None = None,
) -> dict[str, Any]:
    """Verify the provider's RS256 JWT on a callback; returns its claims.

    ``headers`` may be any mapping (Flask's, or a plain dict; names match in any case).
    With ``max_age`` set the token must carry ``iat``, at most that many seconds old. Does
    not look at replays (``check_callback`` does). Raises ``BadSignature`` saying why;
    ``ValueError`` if the configured key is not usable.
    """
    key = _public_key(public_key_pem)
    claims = _decode(_token(headers, header), key, leeway, audience)
    if max_age is not None:
        _check_age(claims, max_age, leeway)
    return claims


# -- once only ---------------------------------------------------------------------------------


class ReplayCache(Protocol):
    """Where accepted tokens are remembered until they would be refused anyway."""

    def first_use(self, key: str, expires_at: float) -> bool:
        """Remember ``key`` until ``expires_at`` (Unix seconds); False if it was already."""

    def forget(self, key: str) -> None:
        """Let ``key`` be used again (the desk failed to handle its callback)."""


@dataclass(frozen=True)
class Accepted:
    """A callback's token, accepted once: its claims and its key in the replay cache."""

    claims: dict[str, Any]
    key: str


def replay_key(token: str, claims: Mapping[str, Any]) -> str:
    """What makes a token "the same token": its ``jti``, else its signature's bytes."""
    jti = claims.get("jti")
    if jti is not None:
        if not isinstance(jti, str) or not jti.strip() or len(jti) > 255:
            raise BadSignature("the callback's token has a jti that is not a short string")
        return "jti-" + hashlib.sha256(jti.encode()).hexdigest()
    try:
        signature = jwt.utils.base64url_decode(token.rsplit(".", 1)[1])
    except (IndexError, ValueError):  # cannot happen for a token that verified
        raise BadSignature("the callback's signature is not valid") from None
    return "sig-" + hashlib.sha256(signature).hexdigest()


def check_callback(
    headers: Mapping[str, str] | Headers,
    public_key_pem: str | bytes,
    cache: ReplayCache,
    *,
    header: str = "Authorization",
    max_age: int = MAX_AGE,
    leeway: int = LEEWAY,
    audience: str | None = None,
) -> Accepted:
    """``verify_callback_signature``, then refuse a token already accepted (see the module
    docstring). Raises ``BadSignature``; ``ValueError`` for an unusable key."""
    key = _public_key(public_key_pem)
    token = _token(headers, header)
    claims = _decode(token, key, leeway, audience)
    _check_age(claims, max_age, leeway)
    replay = replay_key(token, claims)
    until = float(claims["iat"]) + max_age
    if isinstance(claims.get("exp"), int | float):
        until = min(until, float(claims["exp"]))
    if not cache.first_use(replay, until + leeway):
        raise BadSignature("the callback's token was used before; refusing a replay")
    return Accepted(claims, replay)


def mint_callback_token(private_key_pem: str | bytes, lifetime: int = 60,
                        **claims: Any) -> str:
    """A callback token as the desk expects one: ``iat`` now, ``exp``, a fresh ``jti``."""
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex, **claims},
                      private_key_pem, algorithm="RS256")


class DatabaseReplayCache:
    """Accepted tokens as ``used_tokens`` rows (the primary key refuses a second insert)."""

    def __init__(self) -> None:
        self._last_purge = 0.0
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float) -> bool:
        from sqlalchemy import delete, update
        from sqlalchemy.exc import IntegrityError

        from desk.extensions import db
        from desk.models import UsedToken, utcnow

        now, until = utcnow(), datetime.fromtimestamp(expires_at, UTC)
        with db.new_session() as session, session.begin():
            # An expired row not yet purged is no use any more: take it over.
            renewed = session.execute(
                update(UsedToken).where(UsedToken.jti == key, UsedToken.expires_at < now)
                .values(expires_at=until)
            )
            if getattr(renewed, "rowcount", 0):
                return True
            try:
                with session.begin_nested():
                    session.add(UsedToken(jti=key, expires_at=until))
            except IntegrityError:
                return False
            if self._purge_due():
                session.execute(delete(UsedToken).where(UsedToken.expires_at < now))
        return True

    def forget(self, key: str) -> None:
        from sqlalchemy import delete

        from desk.extensions import db
        from desk.models import UsedToken

        with db.new_session() as session, session.begin():
            session.execute(delete(UsedToken).where(UsedToken.jti == key))

    def _purge_due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last_purge < PURGE_EVERY and self._last_purge:
                return False
            self._last_purge = now
            return True


class RedisReplayCache:
    """Accepted tokens as Redis keys (``SET NX`` expiring with the token); the database
    while Redis fails."""

    def __init__(self, url: str, fallback: ReplayCache) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.fallback = fallback

    def first_use(self, key: str, expires_at: float) -> bool:
        import redis

        try:
            return bool(self.client.set(REDIS_PREFIX + key, "1", nx=True,
                                        exat=max(int(expires_at) + 1, int(time.time()) + 1)))
        except (redis.RedisError, OSError) as exc:
            log.warning("mediaservice replay cache: Redis failed (%s); using the database", exc)
            return self.fallback.first_use(key, expires_at)

    def forget(self, key: str) -> None:
        import redis

        try:
            self.client.delete(REDIS_PREFIX + key)
        except (redis.RedisError, OSError):
            self.fallback.forget(key)  # it may have been remembered there meanwhile


def replay_cache_for(app: Flask) -> ReplayCache:
    """The app's replay cache: Redis with ``DESK_REDIS_URL``, else the database. One each."""
    cache: ReplayCache | None = app.extensions.get("mediaservice_replay_cache")
    if cache is None:
        url = app.config.get("DESK_REDIS_URL") or ""
        cache = RedisReplayCache(url, DatabaseReplayCache()) if url else DatabaseReplayCache()
        app.extensions["mediaservice_replay_cache"] = cache
    return cache
