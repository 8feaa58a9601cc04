"""The API blueprint and its authentication, apart from the routes so modules can share it."""

from flask import Blueprint, abort, request
from flask_login import current_user

from desk.extensions import csrf
from desk.web.auth import via_bearer

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.before_request
def _authenticate() -> None:
    if request.endpoint == "api.openapi":
        return
    if not current_user.is_authenticated:
        abort(401, "Log in, or send 'Authorization: Bearer <token>' "
                   "(create one with: flask --app app users token NAME).")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not via_bearer():
        csrf.protect()
