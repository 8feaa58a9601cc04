"""What every webhook view does, written once: authenticate, keep the raw body, parse, apply.

A provider's ``views.py`` builds its blueprint with ``blueprint(name)`` (mounted under
``/webhooks/<name>`` by the registry; CSRF does not apply, providers authenticate with
credentials, not cookies) and composes the three steps:

* ``require(ok, message)``: 401 with a message saying which setting to paste where;
* ``parse_or_reject(provider, parse, ...)``: a delivery that cannot be understood is kept in
  the event log as rejected, with the reason, and answered 400 with that reason. So is one
  the parser understood but that carries a NUL character anywhere (path, query string,
  header, form, body; ``desk.errors.nul_in_request``): the database could not store it. This
  check runs here, after authentication, rather than before every request as for the other
  surfaces, so a refused delivery is still kept;
* ``json_body(label)``: the body as JSON, for a ``parse`` step, refusing what
  ``desk.errors.checked_json`` refuses (nesting deeper than 64, NUL, NaN) with a reason;
* ``apply(provider, parsed, ...)``: the state machine ingests it in one transaction (shared
  with the deliveries that arrived with it: ``desk.services.group_commit``), and the view
  answers after the commit (the provider's instruction, or ``{"status", "calls"}``).

Errors are answered as JSON by ``desk.errors`` for every path under ``/webhooks/``. The
event log keeps the body as it came: bytes that are not UTF-8 as ``\\xNN`` escapes, NUL as
``\\x00`` (``raw_body``), so even a refused delivery is stored on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from desk import metrics
from desk.domain.events import BadPayload, Parsed
from desk.errors import NUL_MESSAGE, InputProblem, checked_json, nul_in_request
from desk.extensions import db
from desk.services import ingest
from desk.services.group_commit import GroupCommit

T = TypeVar("T")


def blueprint(name: str, import_name: str | None = None) -> Blueprint:
    """The webhook blueprint of provider ``name`` (pass the views module's ``__name__``
    when it lives outside ``desk.providers``); the registry mounts it."""
    bp = Blueprint(f"{name}_webhooks", import_name or f"desk.providers.{name}.views")
    bp.before_request(_keep_body)
    return bp


def _keep_body() -> None:
    """Read the body into the request's cache before any view looks at ``request.form``:
    the form parser consumes the stream, and the event log would then keep an empty body."""
    request.get_data(cache=True)


def require(ok: bool, message: str) -> None:
    """401 with ``message`` unless the delivery proved who sent it."""
    if not ok:
        abort(401, message)


def raw_body() -> str:
    """The delivery as it came, for the event log: bytes that are not UTF-8 as ``\\xNN``,
    NUL as ``\\x00`` (PostgreSQL stores no NUL in text), everything else unchanged."""
    return ingest.storable(
        request.get_data(cache=True).decode("utf-8", errors="backslashreplace")
    )


def json_body(label: str, *, lenient: bool = False) -> Any:
    """The body as JSON (None when empty), for a ``parse`` step: ``BadPayload`` starting with
    ``label`` when it is JSON the desk will not take (too deep, NUL, NaN) or, unless
    ``lenient`` (then None), not JSON at all."""
    text = request.get_data(cache=True).decode("utf-8", errors="replace")
    if not text.strip():
        return None
    try:
        return checked_json(text)
    except InputProblem as exc:
        raise BadPayload(f"{label}: {exc}") from None
    except json.JSONDecodeError as exc:
        if lenient:
            return None
        raise BadPayload(f"{label}: the body is not JSON ({exc.msg} at {exc.pos})") from None


def json_or_none() -> Any:
    """The body as JSON, or None when it is empty, not JSON or refused by ``json_body``
    (outside a ``parse`` step, where no reason can be given)."""
    try:
        return json_body("")
    except BadPayload:
        return None


def keep_rejected(
    provider: str, message: str, *, payload: str | None = None,
    content_type: str | None = None, kind: str | None = None, call_ref: str | None = None,
) -> None:
    """Keep a delivery the desk could not understand, with the reason, for diagnosis."""
    with db.new_session() as session:
        ingest.record_rejected(
            session, provider, raw_body() if payload is None else payload,
            request.content_type if content_type is None else content_type, message,
            kind=kind, call_ref=call_ref,
        )


def parse_or_reject(
    provider: str, parse: Callable[[], T], *,
    kind: Callable[[], str | None] = lambda: None,
    call_ref: Callable[[], str | None] = lambda: None,
    payload: str | None = None,
) -> T:
    """``parse()``, or: keep the delivery as rejected and answer 400 with the reason. The
    parser's own reason comes first; a delivery it accepted is still refused when it carries
    a NUL character anywhere."""
    try:
        result = parse()
    except BadPayload as exc:
        reason = str(exc)
    else:
        where = nul_in_request()
        if where is None:
            return result
        reason = f"{NUL_MESSAGE} (found in {where})"
    keep_rejected(provider, reason, payload=payload, kind=kind(), call_ref=call_ref())
    abort(400, reason)


def apply(
    provider: str, parsed: Parsed, *, fold: ingest.Fold | None = None,
    answer: Callable[[Session, ingest.IngestResult], ResponseReturnValue] | None = None,
) -> ResponseReturnValue:
    """Ingest the delivery; answer with ``answer(session, result)`` or the ingest status.
    Times the ingest and tells ``desk.metrics`` how it went (it counts every answer)."""
    grouped: GroupCommit = current_app.extensions["desk_group_commit"]
    with db.new_session() as session:
        with metrics.ingest_timer(provider):
            result = grouped.ingest(provider, parsed, raw_body(), request.content_type, fold)
        metrics.webhook_ingested(result.status)
        if answer is not None:
            return answer(session, result)
    return jsonify(status=result.status, calls=list(result.call_ids))
