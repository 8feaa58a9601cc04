"""Who is asking: session logins for people, bearer tokens for scripts and CRMs.

Flask-Login keeps the session; ``load_from_bearer`` accepts ``Authorization: Bearer <token>``
on every route, checked against the SHA-256 stored by ``flask --app app users token NAME``
(a token revoked by ``users revoke-tokens`` no longer counts). A request authenticated by a
bearer token carries no cookie, so CSRF does not apply to it; ``desk.api`` checks CSRF itself
for session-authenticated writes.

**Ending sessions server-side.** A session records ``users.session_version`` as it was at
login; the user loader refuses a session whose version is not the user's current one.
``end_sessions`` (logout, a new password) bumps it, so every session of that user, in every
browser, ends at once, along with the user's CRM iframe tokens. Remember-me cookies are not
issued; one would carry no version and be refused likewise.

**Throttled logins.** ``login_limits`` (the login form) and ``exchange_limits`` (the CRM
popup's code exchange) count *failed* attempts in ``desk.extensions.limiter``: per account
name (``DESK_LOGIN_LIMIT_ACCOUNT``) and per client address (``DESK_LOGIN_LIMIT_ADDRESS``,
the two routes together). Past a limit every attempt is answered 429 with ``Retry-After``,
even a correct one, until the window has room again. An unknown name costs one password
hash like a known one (``check_login``), so the answer's timing does not tell who exists.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from functools import cache, wraps
from typing import Any

from flask import Flask, Request, abort, current_app, g, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import current_user, user_logged_in
from sqlalchemy import delete, select, update
from werkzeug import security
from werkzeug.wrappers import Response

from desk.db import end_reads
from desk.errors import error_response
from desk.extensions import db, limiter, login_manager
from desk.models import ApiToken, EmbedGrant, User, utcnow

__all__ = ["RateLimitExceeded", "check_login", "end_sessions", "too_many_attempts"]

SESSION_VERSION = "_desk_session_version"


# -- sessions --------------------------------------------------------------------------------


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or session.get(SESSION_VERSION) != user.session_version:
        return None  # logged out (or a new password) since this cookie was issued
    return user


@user_logged_in.connect
def _stamp_session(_app: Flask, user: User, **_extra: Any) -> None:
    """Every ``login_user`` (the form, the CRM exchange, a pop-out's ticket) records the
    version the user loader will compare against."""
    session[SESSION_VERSION] = user.session_version


def end_sessions(user_id: int) -> None:
    """End every session of this user: cookies (by version) and CRM iframe grants."""
    end_reads(db.session)
    db.session.execute(
        update(User).where(User.id == user_id)
        .values(session_version=User.session_version + 1)
    )
    db.session.execute(delete(EmbedGrant).where(EmbedGrant.user_id == user_id))
    db.session.commit()


@login_manager.request_loader
def load_from_bearer(request: Request) -> User | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token.strip()),
                               ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    g.bearer_auth = True
    row.last_used_at = utcnow()
    db.session.commit()
    return row.user


def via_bearer() -> bool:
    return bool(g.get("bearer_auth"))


def supervisor_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Only supervisors; others get 403 (after login_required made sure of a user)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated or not current_user.is_supervisor:
            abort(403, gettext("This page is for supervisors."))
        return view(*args, **kwargs)

    return wrapper


# -- checking a password ---------------------------------------------------------------------


@cache
def _dummy_hash() -> str:
    """A hash made like every user's (same method and cost), of a password nobody knows."""
    return security.generate_password_hash(secrets.token_urlsafe(16))


def check_login(name: str, password: str) -> User | None:
    """The user ``name`` if ``password`` is theirs, else None; the same work either way."""
    user = db.session.scalars(select(User).where(User.name == name)).first() if name else None
    if user is None:
        security.check_password_hash(_dummy_hash(), password)
        return None
    return user if security.check_password_hash(user.password_hash, password) else None


# -- throttling failed attempts --------------------------------------------------------------

# The limits' own messages (English: they only tell ``too_many_attempts`` which limit it
# was); a person reads ``_too_many`` in their language.
ACCOUNT_MESSAGE = ("Too many failed logins for this name. Wait {wait}, then try again. If the "
                   "password is forgotten, ask whoever runs the desk to set a new one.")
ADDRESS_MESSAGE = "Too many failed logins from this network. Wait {wait}, then try again."


def _too_many(description: str | None, wait: str) -> str:
    if description == ACCOUNT_MESSAGE:
        return gettext("Too many failed logins for this name. Wait %(wait)s, then try again. "
                       "If the password is forgotten, ask whoever runs the desk to set a new "
                       "one.", wait=wait)
    if not description or description == ADDRESS_MESSAGE:
        return gettext("Too many failed logins from this network. Wait %(wait)s, then try "
                       "again.", wait=wait)
    return description.format(wait=wait)


def _account_key() -> str:
    # Hashed: typed names (and whatever else is typed there) never reach the limiter's store.
    name = (request.form.get("name") or "").strip().casefold()
    return "account:" + hashlib.sha256(name.encode()).hexdigest()[:32]


def _address_key() -> str:
    return "address:" + get_remote_address()


def _setting(name: str) -> Callable[[], str]:
    return lambda: str(current_app.config[name])


def _refused(status: int) -> Callable[[Response], bool]:
    return lambda response: response.status_code == status


_address_limit = _setting("DESK_LOGIN_LIMIT_ADDRESS")

login_limits = (
    limiter.shared_limit(
        _setting("DESK_LOGIN_LIMIT_ACCOUNT"), scope="login-account", key_func=_account_key,
        methods=["POST"], deduct_when=_refused(401), error_message=ACCOUNT_MESSAGE,
    ),
    limiter.shared_limit(
        _address_limit, scope="login-address", key_func=_address_key, methods=["POST"],
        deduct_when=_refused(401), error_message=ADDRESS_MESSAGE,
    ),
)
exchange_limits = (
    limiter.shared_limit(
        _address_limit, scope="login-address", key_func=_address_key, methods=["POST"],
        deduct_when=_refused(400), error_message=ADDRESS_MESSAGE,
    ),
)


def throttled(limits: tuple[Any, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Apply ``login_limits`` or ``exchange_limits`` to a view."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        for limit in reversed(limits):
            view = limit(view)
        return view

    return decorate


def _wait_words(seconds: int) -> str:
    if seconds < 90:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    minutes = -(-seconds // 60)
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)


def too_many_attempts(exc: RateLimitExceeded) -> ResponseReturnValue:
    """429 with ``Retry-After``: the login page with the message, JSON elsewhere."""
    current = limiter.current_limit
    retry = max(1, current.reset_at - int(time.time())) if current is not None else 60
    message = _too_many(exc.description, _wait_words(retry))
    if request.endpoint == "board.login":
        name = (request.form.get("name") or "").strip()
        response = current_app.make_response(
            (render_template("auth/login.html", error=message, name=name), 429)
        )
    else:
        # The CRM popup's script reads the message a person sees from "error".
        response = error_response(429, message, error=message, retry_after=retry)
    response.headers["Retry-After"] = str(retry)
    return response
