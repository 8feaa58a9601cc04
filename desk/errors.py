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

The error page speaks the reader's language: its title by status (``TITLES``), Werkzeug's own
descriptions replaced by the desk's (``DESCRIPTIONS``), and this module's refusals made with
``gettext`` (the JSON answers are English: ``desk.i18n`` gives the API English).
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
from flask_babel import LazyString, gettext, lazy_gettext
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

_NUL_FOUND: dict[str, LazyString] = {
    "the path": lazy_gettext("NUL bytes are not allowed (found in the path)."),
    "the query string": lazy_gettext("NUL bytes are not allowed (found in the query string)."),
    "a header": lazy_gettext("NUL bytes are not allowed (found in a header)."),
    "the body": lazy_gettext("NUL bytes are not allowed (found in the body)."),
    "the form": lazy_gettext("NUL bytes are not allowed (found in the form)."),
}
"""``nul_in_request``'s answers (English, for the webhooks' event log) as a page says them."""

_NO_SUCH: dict[str, tuple[LazyString, LazyString]] = {
    "call": (lazy_gettext("There is no call %(id)s."),
             lazy_gettext("There is no such call: ids are written in the digits 0 to 9.")),
    "alert": (lazy_gettext("There is no alert %(id)s."),
              lazy_gettext("There is no such alert: ids are written in the digits 0 to 9.")),
    "rule": (lazy_gettext("There is no listen-in %(id)s."),
             lazy_gettext("There is no such listen-in: ids are written in the digits 0 to 9.")),
}
"""What a URL id (``<int:call_id>`` …) that names nothing says, by the thing it names."""

TITLES: dict[int, LazyString] = {
    400: lazy_gettext("Bad Request"),
    401: lazy_gettext("Unauthorized"),
    403: lazy_gettext("Forbidden"),
    404: lazy_gettext("Not Found"),
    405: lazy_gettext("Method Not Allowed"),
    409: lazy_gettext("Conflict"),
    410: lazy_gettext("Gone"),
    413: lazy_gettext("Request Entity Too Large"),
    415: lazy_gettext("Unsupported Media Type"),
    422: lazy_gettext("Unprocessable Entity"),
    429: lazy_gettext("Too Many Requests"),
    500: lazy_gettext("Internal Server Error"),
    502: lazy_gettext("Bad Gateway"),
    503: lazy_gettext("Service Unavailable"),
    504: lazy_gettext("Gateway Timeout"),
}
"""The error page's heading by status (Werkzeug's names, in the reader's language)."""

DESCRIPTIONS: dict[int, LazyString] = {
    400: lazy_gettext("The desk could not understand that request."),
    401: lazy_gettext("Log in to see this page."),
    403: lazy_gettext("You are not allowed to see this page."),
    404: lazy_gettext("There is nothing at this address. Check it, or go back to the desk."),
    405: lazy_gettext("This address does not take that kind of request."),
    409: lazy_gettext("That clashes with a change made meanwhile. Reload the page and try "
                      "again."),
    410: lazy_gettext("This page is gone."),
    413: lazy_gettext("What was sent is too large for the desk."),
    415: lazy_gettext("The desk cannot read what was sent."),
    422: lazy_gettext("The desk cannot use what was sent."),
    429: lazy_gettext("Too many requests. Wait a moment, then try again."),
    500: lazy_gettext("Something went wrong on our side; it was logged."),
    502: lazy_gettext("A service the desk needs answered with something it cannot use. Try "
                      "again shortly."),
    503: lazy_gettext("The desk cannot do that just now. Try again shortly."),
    504: lazy_gettext("A service the desk needs did not answer in time. Try again shortly."),
}
"""What the page says instead of Werkzeug's English default description of a status (an
error raised with words of its own shows those)."""


# -- input limits -----------------------------------------------------------------------------


def N_(text: str) -> str:
    """Marks a message for the catalogue; ``InputProblem.translated`` translates it."""
    return text


class InputProblem(ValueError):
    """Input the desk will not take, in words that say what is wrong with it: ``str()`` is
    English (for the event log and the API), ``translated()`` the request's language.
    ``text`` is a catalogue message with ``%(name)s`` placeholders for ``values``."""

    def __init__(self, text: str, **values: Any) -> None:
        super().__init__(text % values if values else text)
        self.text, self.values = text, values

    def translated(self) -> str:
        return gettext(self.text, **self.values)


def whole_number(raw: str, low: int, high: int) -> int | None:
    """``raw`` as an int when it is ASCII digits from ``low`` to ``high``, else None."""
    text = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def _refuse_constant(name: str) -> Any:
    raise InputProblem(N_("JSON %(name)s is not a number the desk can store"), name=name)


def _check_tree(value: Any) -> None:
    """Walk parsed JSON without recursion: depth, NUL characters, lone surrogates."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InputProblem(N_("NUL bytes are not allowed (found in a JSON string)"))
            if not item.isascii() and _SURROGATE.search(item):
                # "\ud800" is a valid JSON escape but no text: no database can encode it.
                raise InputProblem(N_("JSON strings must be Unicode text, not lone surrogates"))
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise InputProblem(N_("JSON nested deeper than %(depth)s levels is not accepted"),
                               depth=MAX_JSON_DEPTH)
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
        raise InputProblem(N_("JSON nested deeper than %(depth)s levels is not accepted"),
                           depth=MAX_JSON_DEPTH) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of thousands of digits, or bytes not UTF-8
        if isinstance(exc, InputProblem):
            raise
        raise InputProblem(N_("JSON the desk cannot read: %(problem)s"),
                           problem=str(exc)[:120]) from None
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
        found = _NUL_FOUND.get(where)
        abort(400, str(found) if found is not None else f"{NUL_MESSAGE} (found in {where}).")
    if request.is_json and _has_body() and request.get_data(cache=True):
        try:
            checked_json(request.get_data(cache=True))
        except InputProblem as exc:
            abort(400, f"{exc.translated()}.")
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
        said = _NO_SUCH.get(thing)
        if not 0 < value <= MAX_ID:
            abort(404, said[0] % {"id": value} if said else f"There is no {thing} {value}.")
        if not request.path.isascii() and any(ch.isdigit() and not ch.isascii()
                                              for ch in request.path):
            abort(404, str(said[1]) if said else
                  f"There is no such {thing}: ids are written in the digits 0 to 9.")


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
    title, message = _shown(exc, code)
    if request.headers.get("HX-Request"):
        # htmx swaps nothing on an error status; desk.js shows this text in the toast.
        return message, code
    return render_template("shared/error.html", error=exc, title=title, message=message), code


def _shown(exc: HTTPException, code: int) -> tuple[str, str]:
    """The error page's heading and words in the reader's language: Werkzeug's default
    description of the status becomes the desk's (``DESCRIPTIONS``), words of its own stay."""
    title = TITLES.get(code)
    description = exc.description
    if not description or description == type(exc).description:
        default = DESCRIPTIONS.get(code)
        description = str(default) if default is not None else (description or exc.name)
    return (str(title) if title is not None else exc.name), description


def register_errors(app: Flask) -> None:
    app.json = CheckedJSONProvider(app)
    app.url_value_preprocessor(_bound_ids)
    app.before_request(_refuse_unstorable_input)
    app.register_error_handler(HTTPException, _answer)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        exc.description = gettext(
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
        return _answer(InternalServerError(
            gettext("Something went wrong on our side; it was logged.")))
