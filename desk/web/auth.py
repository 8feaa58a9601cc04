"""Who is asking: session logins for people, bearer tokens for scripts and CRMs.

Flask-Login keeps the session; ``load_from_bearer`` accepts ``Authorization: Bearer <token>``
on every route, checked against the SHA-256 stored by ``flask --app app users token NAME``.
A request authenticated by a bearer token carries no cookie, so CSRF does not apply to it;
``desk.api`` checks CSRF itself for session-authenticated writes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Request, abort, g
from flask_login import current_user
from sqlalchemy import select

from desk.extensions import db, login_manager
from desk.models import ApiToken, User, utcnow


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    return db.session.get(User, int(user_id))


@login_manager.request_loader
def load_from_bearer(request: Request) -> User | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token.strip()))
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
            abort(403, "This page is for supervisors.")
        return view(*args, **kwargs)

    return wrapper
