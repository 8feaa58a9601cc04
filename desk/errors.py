"""One place that turns errors into answers: JSON for machines, an HTML page for people.

Webhook and API callers (paths under ``/webhooks/`` and ``/api/``) get
``{"error", "message", "status"}``; browsers get the error page. Unexpected exceptions are
logged with a traceback and answered 500 in the same shape, never with a stack trace.
Every JSON error in the desk, raised or returned, is built by ``error_response``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import Forbidden, HTTPException, InternalServerError, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from desk.services.visibility import CallNotFound, NotVisible

log = logging.getLogger(__name__)

MACHINE_PREFIXES = ("/webhooks/", "/api/")


def _wants_json() -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def error_response(
    status: int, message: str, *, error: str | None = None, **extra: Any
) -> Response:
    """A JSON error answer: ``{"error", "message", "status"}`` plus any ``extra`` fields.

    ``error`` defaults to the status's reason phrase ("Bad Gateway"); callers whose clients
    read a different word there pass their own.
    """
    response = jsonify(error=error or HTTP_STATUS_CODES.get(status, "Error"), message=message,
                       status=status, **extra)
    response.status_code = status
    return response


def _answer(exc: HTTPException) -> ResponseReturnValue:
    code = exc.code or 500
    if _wants_json():
        response = error_response(code, exc.description or exc.name, error=exc.name)
        if code == 401 and request.path.startswith("/webhooks/"):
            response.headers["WWW-Authenticate"] = 'Basic realm="Agent Desk webhooks"'
        return response
    if request.headers.get("HX-Request"):
        # htmx swaps nothing on an error status; desk.js shows this text in the toast.
        return exc.description or exc.name, code
    return render_template("shared/error.html", error=exc), code


def register_errors(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        exc.description = (
            "The form had expired or came from another site. Reload the page and try again."
        )
        return _answer(exc)

    # Refusals raised by services, in the service's words; the status is decided here.
    @app.errorhandler(CallNotFound)
    def _not_found(exc: CallNotFound) -> ResponseReturnValue:
        return _answer(NotFound(str(exc)))

    @app.errorhandler(NotVisible)
    def _not_visible(exc: NotVisible) -> ResponseReturnValue:
        return _answer(Forbidden(str(exc)))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(InternalServerError("Something went wrong on our side; it was logged."))
