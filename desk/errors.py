"""One place that turns errors into answers: JSON for machines, an HTML page for people.

Webhook and API callers (paths under ``/webhooks/`` and ``/api/``) get
``{"error", "message", "status"}``; browsers get the error page. Unexpected exceptions are
logged with a traceback and answered 500 in the same shape, never with a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MACHINE_PREFIXES = ("/webhooks/", "/api/")


def _wants_json() -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def _answer(exc: HTTPException):  # type: ignore[no-untyped-def]
    code = exc.code or 500
    if _wants_json():
        response = jsonify(error=exc.name, message=exc.description, status=code)
        response.status_code = code
        if code == 401 and request.path.startswith("/webhooks/"):
            response.headers["WWW-Authenticate"] = 'Basic realm="Agent Desk webhooks"'
        return response
    if request.headers.get("HX-Request"):
        # htmx swaps nothing on an error status; desk.js shows this text in the toast.
        return exc.description or exc.name, code
    return render_template("error.html", error=exc), code


def register_errors(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):  # type: ignore[no-untyped-def]
        exc.description = (
            "The form had expired or came from another site. Reload the page and try again."
        )
        return _answer(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(InternalServerError("Something went wrong on our side; it was logged."))
