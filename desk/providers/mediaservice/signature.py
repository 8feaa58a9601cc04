"""Callback signatures: is this callback provably from the mediaservice?

See ``desk.providers.mediaservice.parse`` for what is assumed about the scheme (it is not
publicly documented): an RS256 JWT in a header, verified with the configured public key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_public_key,
)

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers


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


def verify_callback_signature(
    headers: Mapping[str, str] | Headers,
    public_key_pem: str | bytes,
    *,
    header: str = "Authorization",
    max_age: int | None = 300,
    leeway: int = 30,
    audience: str | None = None,
) -> dict[str, Any]:
    """Verify the provider's RS256 JWT on a callback; returns its claims.

    ``headers`` may be any mapping (Flask's, or a plain dict; names match in any case).
    With ``max_age`` set the token must carry ``exp`` or ``iat`` and ``iat`` may be at most
    that many seconds old, so a captured token cannot be replayed for ever. Raises
    ``BadSignature`` saying why; ``ValueError`` if the configured key is not usable.
    """
    key = _public_key(public_key_pem)
    wanted = header.lower()
    token = next((v for k, v in headers.items() if k.lower() == wanted), None) or ""
    token = token.strip()
    if token.lower().split(" ", 1)[0] == "bearer":
        token = token[6:].strip()
    if not token:
        raise BadSignature(f"no {header} header: the callback is not signed")
    try:
        claims = jwt.decode(
            token, key, algorithms=["RS256"], leeway=leeway, audience=audience,
            options={"verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise BadSignature("the callback's signature has expired") from None
    except jwt.PyJWTError as exc:
        raise BadSignature(f"the callback's signature is not valid: {exc}") from None
    if max_age is not None:
        iat = claims.get("iat")
        if iat is None and claims.get("exp") is None:
            raise BadSignature("the callback's token has neither iat nor exp; refusing replays")
        if isinstance(iat, (int, float)) and time.time() - iat > max_age + leeway:
            raise BadSignature(f"the callback's token is older than {max_age} s")
    return claims


# -- REST client -------------------------------------------------------------------------
