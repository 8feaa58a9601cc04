"""One place that turns errors into answers: JSON for machines, an HTML page for people; and
the one place that refuses input no handler could store.

Webhook and API callers (paths under ``/webhooks/`` and ``/api/``) get
``{"error", "message", "status"}``; browsers get the error page. Unexpected exceptions are
logged with a traceback and answered 500 in the same shape, never with a stack trace.
Every JSON error in the desk, raised or returned, is built by ``error_response``.

Input limits, checked before any view runs (``register_errors`` installs them):

* **NUL characters** anywhere in the path, query string, form, JSON body or a header → 400
  "NUL bytes are not allowed" (PostgreSQL cannot store them in text). Webhooks are the
  exception: they are checked by ``desk.providers.webhook`` after the sender proved who it
  is, so the refused delivery is still kept in the event log (escaped).
* **Ids in URLs** are 32-bit integer columns: ``/calls/2147483648`` → 404 "There is no call
  2147483648", never a database overflow. ``MAX_ID`` bounds ids taken from query strings too.
* **JSON** bodies nested deeper than ``MAX_JSON_DEPTH``, or with ``NaN``/``Infinity`` → 400
  naming it (``checked_json``), for every ``request.get_json`` in the desk as well; bodies
  above ``DESK_MAX_BODY_BYTES`` are 413 (Flask's ``MAX_CONTENT_LENGTH``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, abort, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import Forbidden, HTTPException, InternalServerError, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from desk.services.visibility import CallNotFound, NotVisible

log = logging.getLogger(__name__)

MACHINE_PREFIXES = ("/webhooks/", "/api/")
WEBHOOK_PREFIX = "/webhooks/"

MAX_ID = 2**31 - 1  # ids are INTEGER columns: PostgreSQL refuses anything larger
MAX_JSON_DEPTH = 64  # no provider or API body comes near; deeper is an attack or a bug
NUL_MESSAGE = "NUL bytes are not allowed"
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes "²"
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- input limits -----------------------------------------------------------------------------


class InputProblem(ValueError):
    """Input the desk will not take, in words that say what is wrong with it."""


def whole_number(raw: str, low: int, high: int) -> int | None:
    """``raw`` as an int when it is ASCII digits from ``low`` to ``high``, else None."""
    text = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def _refuse_constant(name: str) -> Any:
    raise InputProblem(f"JSON {name} is not a number the desk can store")


def _check_tree(value: Any) -> None:
    """Walk parsed JSON without recursion: depth, NUL characters, lone surrogates."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InputProblem(f"{NUL_MESSAGE} (found in a JSON string)")
            if not item.isascii() and _SURROGATE.search(item):
                # "\ud800" is a valid JSON escape but no text: no database can encode it.
                raise InputProblem("JSON strings must be Unicode text, not lone surrogates")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise InputProblem(f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted")
        children: Iterable[Any] = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
        stack.extend((child, depth + 1) for child in children)


def checked_json(text: str | bytes) -> Any:
    """``json.loads`` for input from outside: refuses nesting deeper than ``MAX_JSON_DEPTH``
    (the parser's own recursion limit included), NUL characters and ``NaN``/``Infinity``
    with ``InputProblem``; text that is not JSON raises ``json.JSONDecodeError`` as usual
    (both are ``ValueError``)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InputProblem(
            f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted"
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of thousands of digits, or bytes not UTF-8
        if isinstance(exc, InputProblem):
            raise
        raise InputProblem(f"JSON the desk cannot read: {str(exc)[:120]}") from None
    _check_tree(value)
    return value


class CheckedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading with ``checked_json``: ``request.get_json`` anywhere in the desk
    answers a too-deep or NUL-carrying body 400 (or None with ``silent``), never 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return checked_json(s)


def nul_in_request() -> str | None:
    """Where this request carries a NUL character (path, query string, form, body, header),
    or None. The raw body is looked at as bytes, so a form's ``%00`` and JSON's ``\\u0000``
    are found by the form and ``checked_json``, a bare NUL byte by the body."""
    if "\x00" in request.path:
        return "the path"
    if any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        return "the query string"
    if any("\x00" in value for value in request.headers.values()):
        return "a header"
    if not _has_body():
        return None
    # The raw body first: once the form parser has read the stream, get_data would be empty.
    if b"\x00" in request.get_data(cache=True):
        return "the body"
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and any(
        "\x00" in key or "\x00" in value for key, value in request.form.items(multi=True)
    ):
        return "the form"
    return None


def _has_body() -> bool:
    """Whether the request says it carries a body; a websocket upgrade, say, does not, and
    its stream is left alone."""
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    return bool(request.content_length) or chunked


def _refuse_unstorable_input() -> None:
    """Before every view but the webhooks' (see the module docstring): NUL and JSON limits."""
    if request.path.startswith(WEBHOOK_PREFIX):
        return
    where = nul_in_request()
    if where is not None:
        abort(400, f"{NUL_MESSAGE} (found in {where}).")
    if request.is_json and _has_body() and request.get_data(cache=True):
        try:
            checked_json(request.get_data(cache=True))
        except InputProblem as exc:
            abort(400, f"{exc}.")
        except ValueError:
            pass  # not JSON at all: each view says what it expected


def _bound_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Ids in the URL beyond the columns' range name nothing that exists: 404 at once. So do
    ids in other scripts' digits (Werkzeug's ``int`` converter reads an Arabic-Indic one as
    call 1): every id has one address."""
    for name, value in (values or {}).items():
        if not (name.endswith("_id") and isinstance(value, int)):
            continue
        thing = name.removesuffix("_id").replace("_", " ")
        if not 0 < value <= MAX_ID:
            abort(404, f"There is no {thing} {value}.")
        if not request.path.isascii() and any(ch.isdigit() and not ch.isascii()
                                              for ch in request.path):
            abort(404, f"There is no such {thing}: ids are written in the digits 0 to 9.")


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
        retry_after = getattr(exc, "retry_after", None)  # 503 NotStored: send it again
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    if request.headers.get("HX-Request"):
        # htmx swaps nothing on an error status; desk.js shows this text in the toast.
        return exc.description or exc.name, code
    return render_template("shared/error.html", error=exc), code


def register_errors(app: Flask) -> None:
    app.json = CheckedJSONProvider(app)
    app.url_value_preprocessor(_bound_ids)
    app.before_request(_refuse_unstorable_input)
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
