"""What every webhook view does, written once: authenticate, keep the raw body, parse, apply.

A provider's ``views.py`` builds its blueprint with ``blueprint(name)`` (mounted under
``/webhooks/<name>`` by the registry; CSRF does not apply, providers authenticate with
credentials, not cookies) and composes the three steps:

* ``require(ok, message)``: 401 with a message saying which setting to paste where;
* ``parse_or_reject(provider, parse, ...)``: a delivery that cannot be understood is kept in
  the event log as rejected, with the reason, and answered 400 with that reason;
* ``apply(provider, parsed, ...)``: the state machine ingests it in one transaction, and the
  view answers (the provider's instruction, or ``{"status", "calls"}``).

Errors are answered as JSON by ``desk.errors`` for every path under ``/webhooks/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from desk.domain.events import BadPayload, Parsed
from desk.extensions import db
from desk.services import ingest

T = TypeVar("T")


def blueprint(name: str, import_name: str | None = None) -> Blueprint:
    """The webhook blueprint of provider ``name`` (pass the views module's ``__name__``
    when it lives outside ``desk.providers``); the registry mounts it."""
    return Blueprint(f"{name}_webhooks", import_name or f"desk.providers.{name}.views")


def require(ok: bool, message: str) -> None:
    """401 with ``message`` unless the delivery proved who sent it."""
    if not ok:
        abort(401, message)


def raw_body() -> str:
    """The delivery as it came, for the event log (undecodable bytes replaced)."""
    return request.get_data(cache=True).decode("utf-8", errors="replace")


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
    """``parse()``, or: keep the delivery as rejected and answer 400 with the reason."""
    try:
        return parse()
    except BadPayload as exc:
        keep_rejected(provider, str(exc), payload=payload, kind=kind(), call_ref=call_ref())
        abort(400, str(exc))


def apply(
    provider: str, parsed: Parsed, *, fold: ingest.Fold | None = None,
    answer: Callable[[Session, ingest.IngestResult], ResponseReturnValue] | None = None,
) -> ResponseReturnValue:
    """Ingest the delivery; answer with ``answer(session, result)`` or the ingest status."""
    with db.new_session() as session:
        result = ingest.ingest(session, provider, parsed, raw_body(), request.content_type,
                               fold=fold)
        if answer is not None:
            return answer(session, result)
    return jsonify(status=result.status, calls=list(result.call_ids))
