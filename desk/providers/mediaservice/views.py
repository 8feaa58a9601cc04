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

Three things only this webhook can do, because they need the database:

* **Finding the call of a callback that names none.** ``/callAnswered`` has no
  ``sessionId`` (OpenAPI page, section ``/callAnswered``; the specs README). When it also
  lacks the desk's ``sessionReferenceId`` (as the page's sample does), the call is found by
  participant id: ``/callNotify``'s ``participantId`` / ``remoteParticipantId`` are stored in
  the call's participant columns while they are empty, and ``/callAnswered``'s
  ``callerParticipantId`` / ``calleeParticipantId`` are looked up in both; then the callback
  is parsed again naming that call.
* **Talk time.** ``/sessionCompleted``'s ``sessionDuration`` (read as milliseconds, see
  ``parse``) spans the whole session from ``/newCall``; the talk time is that minus the time
  from the call's start to its answer, stored as ``Call.duration``. Without it,
  ``Call.talk_seconds`` falls back to ended minus answered. It is recomputed on every callback,
  so callbacks arriving out of order end in the same figure.
* **siteBaseUrl** is kept only when it is one of ``DESK_MEDIASERVICE_SITE_URLS``; any other is
  logged and dropped, so API calls about the call keep going to ``DESK_MEDIASERVICE_URL``.
* **Listen-in.** An answer that connects a call (``newCall``, or a transfer's ``callEvent``)
  gets ``monitorDestAddr`` / ``monitorSipFrom`` when a supervisor's rule matches the agent it
  goes to (its ``destAddr`` is that agent's SIP peer) or the number called
  (``desk.services.listen``; ``answers.with_monitor``). The monitoring leg's ``callAnswered``
  (``monitoringParticipant: true``) changes no state: it keeps the leg's participant id in
  ``provider_facts["monitor_legs"]``, so the leg's later ``callEvent`` is parsed as the
  leg's (and answered with no action: the call itself goes on), and who listens in
  ``provider_facts["listened_by"]`` (the supervisor whose rule rings the SIP user the leg's
  ``remotePartyNumber`` names), which the supervisor board shows until the leg drops.
* **Recording segments.** ``/recordingReady`` confirms one file: the segment it belongs to
  (``desk.services.recording``) becomes ready or failed, and the call's recording state is
  settled from all of them, so one failed segment leaves the others playable.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

from flask import Response, abort, after_this_request, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from desk.extensions import current_app_object, db
from desk.live.changes import ALERTS, CALLS, mark_changed
from desk.models import Alert, Call, utcnow
from desk.providers.mediaservice import parse as ms
from desk.providers.mediaservice import routing
from desk.providers.mediaservice.answers import (
    answer_for_call_identifier,
    answer_for_new_remote_call,
    with_monitor,
)
from desk.providers.mediaservice.client import allowed_site_base_url
from desk.providers.mediaservice.signature import BadSignature, check_callback, replay_cache_for
from desk.providers.webhook import apply, blueprint, json_body, parse_or_reject
from desk.services import ingest, listen
from desk.services import recording as segments

bp = blueprint("mediaservice")

log = logging.getLogger(__name__)

# Facts kept on the call for later actions and for the detail view.
KEPT_FACTS = (
    "session_id", "trace_id", "reply_id", "connection_id", "site_base_url", "site_id",
    "sip_call_id", "caller_display_name", "called_party", "caller_withheld", "session_seconds",
)


@cache
def _public_key(path: str) -> str:
    return Path(path).read_text()


def _check_signature() -> None:
    """Signed by the provider, recent, and not seen before (``signature``); else 401.

    A token is remembered as used from here on; if the desk then fails to handle the
    callback (a 5xx answer, e.g. the database is away) it is forgotten again, so the
    provider's retry with the same token is accepted.
    """
    key_file = current_app.config["DESK_MEDIASERVICE_CALLBACK_KEY_FILE"]
    if not key_file:
        if current_app.config["DESK_DEMO"]:
            return
        abort(401, "Callbacks must be signed: set DESK_MEDIASERVICE_CALLBACK_KEY_FILE to the "
                   "mediaservice's public key.")
    cache = replay_cache_for(current_app_object())
    try:
        accepted = check_callback(request.headers, _public_key(key_file), cache,
                                  max_age=current_app.config["DESK_MEDIASERVICE_TOKEN_MAX_AGE"])
    except BadSignature as exc:
        abort(401, f"Callback signature refused: {exc}")
    except (OSError, ValueError) as exc:  # the configured key itself is unusable
        log.error("cannot verify mediaservice callbacks with %s: %s", key_file, exc)
        abort(401, "The desk cannot verify callbacks: its configured public key is unusable.")

    @after_this_request
    def _release_on_failure(response: Response) -> Response:
        if response.status_code >= 500:
            try:
                cache.forget(accepted.key)
            except Exception:  # the failure that caused the 5xx may be this one's too
                log.warning("could not release a mediaservice callback token", exc_info=True)
        return response


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


def _site_base_url(facts: dict[str, Any]) -> None:
    """Keep ``siteBaseUrl`` only when it is a configured hybrid site (see the docstring)."""
    url = facts.get("site_base_url")
    if url is None:
        return
    allowed = allowed_site_base_url(url, current_app.config["DESK_MEDIASERVICE_SITE_URLS"])
    if allowed is None:
        log.warning("mediaservice callback names siteBaseUrl %r, which is not in "
                    "DESK_MEDIASERVICE_SITE_URLS: ignored, API calls keep going to "
                    "DESK_MEDIASERVICE_URL", str(url)[:200])
        del facts["site_base_url"]
    else:
        facts["site_base_url"] = allowed


def _fold_participants(call: Call, facts: dict[str, Any], callback: str) -> None:
    """Participant ids, so a ``/callAnswered`` without the desk's reference finds its call."""
    if facts.get("monitoring"):
        return  # a monitoring leg's participants are not the call's parties
    if "caller_participant_id" in facts:  # /callAnswered names both parties: authoritative
        call.caller_participant_id = facts["caller_participant_id"]
        call.callee_participant_id = facts.get("callee_participant_id")
    elif callback == "callNotify":
        # participantId is the party the event is about ("user": the caller in the sample),
        # remoteParticipantId the far side (= calleeParticipantId in /callAnswered). Filled
        # only while empty: a transfer's later ringing must not rename an answered call's legs.
        call.caller_participant_id = call.caller_participant_id or facts.get("participant_id")
        call.callee_participant_id = (call.callee_participant_id
                                      or facts.get("remote_participant_id"))


def _fold_talk_time(call: Call) -> None:
    """``Call.duration`` from the session's length, once the call is answered and ended."""
    session_seconds = (call.provider_facts or {}).get("session_seconds")
    if not isinstance(session_seconds, (int, float)) or call.answered_at is None:
        return
    if call.state != "ended" or call.started_at is None:
        return
    ringing = (call.answered_at - call.started_at).total_seconds()
    call.duration = max(0, int(session_seconds - max(0.0, ringing)))


def _fold(parsed: ms.MediaserviceParsed) -> ingest.Fold:
    """What this callback teaches about its call, applied inside ingest's transaction."""
    facts: dict[str, Any] = dict(parsed.facts)
    _site_base_url(facts)

    def fold(session: Session, delivery: ingest.Logged) -> None:
        if parsed.callback == ms.ALARM:
            session.add(Alert(provider=ms.PROVIDER, kind=facts.get("alarm_type", "alarm"),
                              message=facts.get("alarm_text", "alarm"),
                              delivery_id=delivery.id))
            mark_changed(session, ALERTS, 0)
            return
        call = _call_for(session, parsed)
        if call is None:
            return
        delivery.call_id = call.id
        kept = {k: facts[k] for k in KEPT_FACTS if k in facts}
        if facts.get("monitoring"):
            kept = _fold_monitoring(session, call, facts, parsed.callback)
        _fold_participants(call, facts, parsed.callback)
        if kept:
            call.provider_facts = {**(call.provider_facts or {}), **kept}
        _fold_talk_time(call)
        _fold_action_confirmations(session, call, facts, parsed.callback)
        mark_changed(session, CALLS, call.id)

    return fold


def _fold_monitoring(session: Session, call: Call, facts: dict[str, Any],
                     callback: str) -> dict[str, Any]:
    """What a monitoring leg's callback teaches (see the module docstring, "Listen-in")."""
    kept: dict[str, Any] = {"monitored": True}
    facts_now = call.provider_facts or {}
    if callback == "callAnswered":
        legs = [str(leg) for leg in facts_now.get("monitor_legs") or ()]
        leg = facts.get("callee_participant_id")
        if leg and leg not in legs and leg not in (call.caller_participant_id,
                                                   call.callee_participant_id):
            legs.append(leg)
        kept["monitor_legs"] = legs[-20:]
        kept["listened_by"] = listen.listener(session, facts.get("monitor_party"),
                                              call.agent_id, call.to_number)
    elif callback == "callEvent":
        kept["listened_by"] = None  # the leg dropped or failed: nobody listens any more
    return kept


def _fold_action_confirmations(session: Session, call: Call, facts: dict[str, Any],
                               callback: str) -> None:
    """The provider's own callbacks confirm what an agent pressed."""
    recording = facts.get("recording_state")
    if recording in ("ready", "failed"):
        name = facts.get("recording_file_name")
        segments.file_confirmed(session, call, name, recording == "ready",
                                size=facts.get("recording_file_size"),
                                reason=facts.get("recording_failure_reason"))
        if recording == "ready":
            call.recording_file_name = call.recording_file_name or name
    if recording or (call.recording_state != "off"
                     and (call.state == "ended" or call.recording_state == "stopping")):
        segments.settle(session, call)
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
        body = json_body(callback)
        parsed = ms.parse(callback, body, utcnow())
        if parsed.call_ref is None and parsed.participant_ids:
            with db.new_session() as session:
                call = _call_for(session, parsed)
            if call is not None:
                parsed = ms.parse(callback, body, utcnow(), call_id=call.provider_call_id)
        if parsed.callback == "callEvent" and parsed.facts.get("participant_id") \
                and not parsed.facts.get("monitoring"):
            legs = _monitor_legs(parsed)
            if parsed.facts["participant_id"] in legs:
                parsed = ms.parse(callback, body, utcnow(), call_id=parsed.call_ref,
                                  monitoring_legs=legs)
        return parsed

    parsed = parse_or_reject(ms.PROVIDER, parse, kind=lambda: callback)

    def answer(session: Session, result: ingest.IngestResult) -> ResponseReturnValue:
        if not parsed.needs_answer:
            return jsonify({"status": result.status})
        return jsonify(_answer(session, parsed))

    return apply(ms.PROVIDER, parsed.parsed, fold=_fold(parsed), answer=answer)


def _monitor_legs(parsed: ms.MediaserviceParsed) -> frozenset[str]:
    """The participant ids of the call's monitoring legs (``_fold_monitoring``)."""
    with db.new_session() as session:
        call = _call_for(session, parsed)
        legs = (call.provider_facts or {}).get("monitor_legs") if call is not None else None
    return frozenset(str(leg) for leg in legs or ())


def _listen_in(session: Session, answer: dict[str, Any], call: Call | None) -> dict[str, Any]:
    """``answer`` with a supervisor's monitoring leg when a listen-in rule matches the agent
    it connects the call to, or the number called (``desk.services.listen``)."""
    if call is None or answer.get("action") != "call":
        return answer
    agent = ingest.find_agent(session, answer.get("destAddr"))
    rule = listen.for_call(session, agent.id if agent else None, call.to_number)
    if rule is None:
        return answer
    shown = (agent.extension if agent else None) if rule.agent_id else rule.number
    try:
        return with_monitor(answer, rule.address, shown)
    except ValueError:  # rules are checked when stored; an old row must not stop the call
        log.warning("listen-in %s has an unusable address %r: call %s not monitored",
                    rule.id, rule.address[:80], call.id)
        return answer


def _answer(session: Session, parsed: ms.MediaserviceParsed) -> dict[str, Any]:
    """The instruction the mediaservice waits for."""
    call = _call_for(session, parsed)
    if parsed.callback == "callEvent" and parsed.facts.get("monitoring"):
        return {}  # a monitoring leg left: no action, the call it listened to goes on
    if parsed.callback == "newCall":
        return _listen_in(session, routing.answer_new_call(session, parsed, call), call)
    if parsed.callback == "callEvent":
        return _listen_in(session, routing.answer_call_event(session, parsed, call), call)
    if parsed.callback == "newRemoteCall":
        return answer_for_new_remote_call(parsed)
    if parsed.callback == "getCallIdentifier":
        return answer_for_call_identifier(parsed)
    return {}  # getIvrCommand: the desk runs no IVR; an empty answer ends the command
