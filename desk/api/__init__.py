"""The JSON API under ``/api/v1``, described by ``/api/v1/openapi.json``.

Authenticated by the session (writes then need the CSRF token in ``X-CSRFToken``) or by
``Authorization: Bearer <token>`` (no CSRF: no cookie is involved). Errors are JSON.
"""

from flask import Blueprint, abort
from flask_login import current_user

from desk.auth import via_bearer
from desk.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.before_request
def _authenticate() -> None:
    from flask import request

    if request.endpoint == "api.openapi":
        return
    if not current_user.is_authenticated:
        abort(401, "Log in, or send 'Authorization: Bearer <token>' "
                   "(create one with: flask --app app users token NAME).")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not via_bearer():
        csrf.protect()


from desk.api import calls, openapi, people  # noqa: E402,F401  (routes register on import)
