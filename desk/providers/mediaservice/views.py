"""``POST /webhooks/mediaservice/<callback>``: the iotcomms.io mediaservice's callbacks.

The callback base URL pasted into the provider's portal is ``/webhooks/mediaservice``; the
provider appends the callback name (``/callNotify``, ``/callEvent``, ...) and posts alarms to
``/<DESK_MEDIASERVICE_DOMAIN>``. Outside demo mode every callback must carry the provider's
signature, verified with ``DESK_MEDIASERVICE_CALLBACK_KEY_FILE``; without it → 401.

Each callback goes through ``desk.services.ingest.ingest`` like any provider's, and what only the
mediaservice knows (replyId, connectionId, participant ids, recording outcome) is folded
into the call row in the same transaction. ``callEvent`` and ``newCall`` wait for an
instruction in the reply; it is computed from the database alone (no outbound request), so
the reply is immediate — and repeated for a retried delivery, whose first answer was lost.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

from flask import abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from desk.domain.events import BadPayload
from desk.extensions import db
from desk.live.changes import mark_changed
from desk.models import Alert, Call, Delivery, utcnow
from desk.providers.mediaservice import parse as ms
from desk.providers.mediaservice import routing
from desk.providers.mediaservice.answers import (
    answer_for_call_identifier,
    answer_for_new_remote_call,
)
from desk.providers.mediaservice.signature import BadSignature, verify_callback_signature
from desk.providers.webhook import apply, blueprint, parse_or_reject, raw_body
from desk.services import ingest

bp = blueprint("mediaservice")

log = logging.getLogger(__name__)

# Facts kept on the call for later actions and for the detail view.
KEPT_FACTS = (
    "session_id", "trace_id", "reply_id", "connection_id", "site_base_url", "site_id",
    "sip_call_id", "caller_display_name", "called_party", "caller_withheld",
)


@cache
def _public_key(path: str) -> str:
    return Path(path).read_text()


def _check_signature() -> None:
    key_file = current_app.config["DESK_MEDIASERVICE_CALLBACK_KEY_FILE"]
    if not key_file:
        if current_app.config["DESK_DEMO"]:
            return
        abort(401, "Callbacks must be signed: set DESK_MEDIASERVICE_CALLBACK_KEY_FILE to the "
                   "mediaservice's public key.")
    try:
        verify_callback_signature(request.headers, _public_key(key_file))
    except BadSignature as exc:
        abort(401, f"Callback signature refused: {exc}")
    except (OSError, ValueError) as exc:  # the configured key itself is unusable
        log.error("cannot verify mediaservice callbacks with %s: %s", key_file, exc)
        abort(401, "The desk cannot verify callbacks: its configured public key is unusable.")


def _known_callback(callback: str) -> bool:
    name = callback.strip("/")
    if name in ms.CALLBACKS and name != ms.ALARM:
        return True
    domain = current_app.config["DESK_MEDIASERVICE_DOMAIN"]
    return name == domain if domain else "." in name and "/" not in name


def _call_for(session: Session, parsed: ms.MediaserviceParsed) -> Call | None:
    if parsed.call_ref:
        return session.scalars(select(Call).where(
            Call.provider == ms.PROVIDER, Call.provider_call_id == parsed.call_ref
        )).first()
    ids = parsed.participant_ids
    if not ids:
        return None
    return session.scalars(select(Call).where(
        Call.provider == ms.PROVIDER,
        or_(Call.caller_participant_id.in_(ids), Call.callee_participant_id.in_(ids)),
    ).order_by(Call.id.desc())).first()


def _fold(parsed: ms.MediaserviceParsed):  # type: ignore[no-untyped-def]
    """What this callback teaches about its call, applied inside ingest's transaction."""
    facts: dict[str, Any] = dict(parsed.facts)

    def fold(session: Session, delivery: Delivery) -> None:
        if parsed.callback == ms.ALARM:
            session.add(Alert(provider=ms.PROVIDER, kind=facts.get("alarm_type", "alarm"),
                              message=facts.get("alarm_text", "alarm"),
                              delivery_id=delivery.id))
            mark_changed(session, "alerts", 0)
            return
        call = _call_for(session, parsed)
        if call is None:
            return
        delivery.call_id = call.id
        kept = {k: facts[k] for k in KEPT_FACTS if k in facts}
        if facts.get("monitoring"):
            kept = {"monitored": True}
        elif "caller_participant_id" in facts:
            call.caller_participant_id = facts["caller_participant_id"]
            call.callee_participant_id = facts.get("callee_participant_id")
        if kept:
            call.provider_facts = {**(call.provider_facts or {}), **kept}
        _fold_action_confirmations(call, facts, parsed.callback)
        mark_changed(session, "calls", call.id)

    return fold


def _fold_action_confirmations(call: Call, facts: dict[str, Any], callback: str) -> None:
    """The provider's own callbacks confirm what an agent pressed."""
    recording = facts.get("recording_state")
    if recording == "ready":
        call.recording_state = "ready"
        call.recording_file_name = facts.get("recording_file_name") or call.recording_file_name
        call.recording_error = None
    elif recording == "failed":
        call.recording_state = "failed"
        call.recording_error = facts.get("recording_failure_reason") or "the recording failed"
    if call.state == "ended" and call.recording_state in ("on", "pending"):
        call.recording_state = "stopping"  # the file comes with recordingReady
    if facts.get("split") and call.pending_action == "split":
        call.pending_action = None
    if call.state == "ended" and call.pending_action in ("hangup", "drop"):
        call.pending_action = None


@bp.post("/<path:callback>")
def mediaservice_callback(callback: str) -> ResponseReturnValue:
    _check_signature()
    if not _known_callback(callback):
        abort(404, f"Unknown mediaservice callback {callback[:60]!r}. The callback base URL is "
                   "/webhooks/mediaservice; alarms go to /webhooks/mediaservice/<your domain>.")

    def parse() -> ms.MediaserviceParsed:
        payload = raw_body()
        try:
            body = json.loads(payload) if payload.strip() else None
        except json.JSONDecodeError as exc:
            raise BadPayload(f"{callback}: the body is not JSON ({exc.msg} at {exc.pos})") from None
        parsed = ms.parse(callback, body, utcnow())
        if parsed.call_ref is None and parsed.participant_ids:
            with db.new_session() as session:
                call = _call_for(session, parsed)
            if call is not None:
                parsed = ms.parse(callback, body, utcnow(), call_id=call.provider_call_id)
        return parsed

    parsed = parse_or_reject(ms.PROVIDER, parse, kind=lambda: callback)

    def answer(session: Session, result: ingest.IngestResult) -> ResponseReturnValue:
        if not parsed.needs_answer:
            return jsonify({"status": result.status})
        return jsonify(_answer(session, parsed))

    return apply(ms.PROVIDER, parsed.parsed, fold=_fold(parsed), answer=answer)


def _answer(session: Session, parsed: ms.MediaserviceParsed) -> dict[str, Any]:
    """The instruction the mediaservice waits for."""
    call = _call_for(session, parsed)
    if parsed.callback == "newCall":
        return routing.answer_new_call(session, parsed, call)
    if parsed.callback == "callEvent":
        return routing.answer_call_event(session, parsed, call)
    if parsed.callback == "newRemoteCall":
        return answer_for_new_remote_call(parsed)
    if parsed.callback == "getCallIdentifier":
        return answer_for_call_identifier(parsed)
    return {}  # getIvrCommand: the desk runs no IVR; an empty answer ends the command
