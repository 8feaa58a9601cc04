"""Click-to-dial: one agent's "Dial" press, from checked input to Teleforge and the audit log.

``place_call`` is the service the dial form (``desk.web.dial``) and ``POST /api/v1/dial``
(``desk.api.dial``) share. Order matters and is the point of this module:

1. check every field with Teleforge's rules (``validate_dial``); mistakes go back by field,
   and so does an extension no person has (``unknown_extension``: nobody's board would show
   the call, and Teleforge would ring a phone nobody sits at);
2. ask first (``DialNeedsConfirmation``, answered with ``confirm``) when the person rung
   first is on a call already, or is someone else who is offline: both are usually a
   mistake, sometimes meant;
3. create the call row in state "dialling" (``ingest.start_outbound``), committed, so it is
   on every board at once. The reference is the row's ``provider_call_id``: it is how
   Teleforge's notifications find the row, and its unique index is what makes a double
   submit place one call (the form sends the same pre-generated reference twice);
4. POST once to Teleforge. Never retried: a second POST could ring a customer twice;
5. record the outcome in the audit log, in the same transaction as what it did to the row.
   A dial Teleforge certainly did not place (refused, unreachable, rejected) ends the row as
   "failed" with the reason in ``action_error``; one it may have placed (timeout, 5xx, a
   dropped connection) stays "dialling" with a warning, because its notifications may still
   come and a late "ringing" could not revive an ended row.

Every message here is lazy (``lazy_gettext``): the dial form shows it in the agent's
language, ``POST /api/v1/dial`` in English, and what is stored (the audit log,
``Call.action_error``) is its English (``rules.english``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from flask_babel import force_locale, lazy_gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.db import end_reads
from desk.domain.events import CallEvent
from desk.domain.state import merge
from desk.live.changes import AGENTS, CALLS, mark_changed
from desk.models import LIVE_STATES, Call, User, utcnow
from desk.providers.teleforge.client import DialResult, TeleforgeClient, TeleforgeError
from desk.providers.teleforge.rules import (
    PROVIDER,
    DialInvalid,
    DialRequest,
    english,
    generate_reference,
    is_extension,
    normalise_number,
    payload,
    validate_dial,
)
from desk.services import audit, ingest
from desk.services.visibility import can_see

FIELDS = ("agent", "callee", "outbound_id", "reference")
CHECK_FIELDS = lazy_gettext("Check the highlighted fields.")
REFERENCE_USED = lazy_gettext("This reference was used already: type another, or leave it empty.")
_NONE_SET = lazy_gettext("none set")
# A form's one-time token: it becomes the generated reference, so a double submit collides.
_ATTEMPT = re.compile(r"[A-Za-z0-9]{16,64}")


class DialRefused(Exception):
    """The desk will not place this dial. ``status`` is the HTTP status to answer with,
    ``errors`` the messages by field (empty when the problem is not one field's), ``call``
    the call a duplicate dial already made, when the user may see it (``can_see``)."""

    def __init__(
        self,
        status: int,
        message: Any,
        errors: dict[str, Any] | None = None,
        warnings: dict[str, Any] | None = None,
        call: Call | None = None,
    ) -> None:
        super().__init__(english(message))
        self.status = status
        self.message = message
        self.errors = dict(errors or {})
        self.warnings = dict(warnings or {})
        self.call = call


class DialNeedsConfirmation(DialRefused):
    """The dial is possible but probably a mistake: ask, and dial when asked again with
    ``confirm``. ``questions`` says why, by reason (``on_call``, ``offline``), each a
    sentence; ``message`` is all of them. ``current_call`` is the call the person rung first
    is on, if that is the reason."""

    def __init__(self, questions: dict[str, Any], current_call: Call | None = None) -> None:
        super().__init__(409, " ".join(map(str, questions.values())))
        self.questions = dict(questions)
        self.current_call = current_call


@dataclass
class DialOutcome:
    """What became of a dial that reached Teleforge (or tried to)."""

    call: Call
    request: DialRequest
    reference_generated: bool
    result: DialResult | None = None
    error: TeleforgeError | None = None
    warnings: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def reference_for_attempt(attempt: str | None) -> str | None:
    """The reference a form's one-time token stands for, or None for a bad token."""
    if attempt and _ATTEMPT.fullmatch(attempt):
        return f"desk-{attempt.lower()}"
    return None


def check_field(name: str, raw: str) -> tuple[str, Any, Any]:
    """Check one field as the agent types: (normalised value, error, warning).

    The other fields are filled with known-good values so only ``name`` can fail, which
    keeps the live messages and the submit using exactly the same rules.
    """
    if name not in FIELDS:
        raise ValueError(f"unknown dial field {name!r}")
    values = {"agent": "1001", "callee": "0820001234", "outbound_id": "random", "reference": "x"}
    values[name] = raw
    try:
        request = validate_dial(**values)
    except DialInvalid as exc:
        return raw.strip(), exc.errors.get(name), exc.warnings.get(name)
    value = getattr(request, name)
    return value, None, request.warnings.get(name)


def agent_user(session: Session, extension: str) -> User | None:
    """The person a dial's agent extension belongs to (the row goes to their board)."""
    return session.scalars(
        select(User).where(User.extension == extension).order_by(User.id).limit(1)
    ).first()


def unknown_extension(session: Session, value: str) -> Any:
    """The message for an extension (3 or 4 digits) nobody has, else None.

    A phone number to ring first is still allowed: Teleforge's "agent" may be "the first
    number connected to the call". An extension is the desk's own people.
    """
    if not is_extension(value) or agent_user(session, value) is not None:
        return None
    return lazy_gettext("No agent has extension %(extension)s. Pick an agent from the list, or "
                        "type a phone number to ring first.", extension=value)


def _on_call(user: User, owner: User, call: Call) -> Any:
    """The question for a dial whose first ring goes to someone on a call already: one whole
    sentence per case, as languages order them differently."""
    other = (call.from_number if call.direction == "inbound" else call.to_number) or "?"
    if owner.id == user.id:
        if call.state == "talking":
            return lazy_gettext("You are on a call already (talking with %(number)s).",
                                number=other)
        if call.state == "ringing" and call.direction == "inbound":
            return lazy_gettext("You are on a call already (a call from %(number)s is "
                                "ringing).", number=other)
        if call.state == "ringing":
            return lazy_gettext("You are on a call already (a call to %(number)s is ringing).",
                                number=other)
        return lazy_gettext("You are on a call already (dialling %(number)s).", number=other)
    if call.state == "talking":
        return lazy_gettext("%(name)s is on a call already (talking with %(number)s).",
                            name=owner.name, number=other)
    if call.state == "ringing" and call.direction == "inbound":
        return lazy_gettext("%(name)s is on a call already (a call from %(number)s is "
                            "ringing).", name=owner.name, number=other)
    if call.state == "ringing":
        return lazy_gettext("%(name)s is on a call already (a call to %(number)s is ringing).",
                            name=owner.name, number=other)
    return lazy_gettext("%(name)s is on a call already (dialling %(number)s).",
                        name=owner.name, number=other)


def questions_before_dialling(
    session: Session, user: User, owner: User | None, request: DialRequest
) -> tuple[dict[str, str], Call | None]:
    """Why this dial should be confirmed first (empty: it need not be), and the call the
    person rung first is on. A call with this very reference does not count: that is the
    same dial sent again, answered as a duplicate."""
    if owner is None:
        return {}, None
    questions: dict[str, Any] = {}
    current = session.scalars(
        select(Call).where(
            Call.agent_id == owner.id, Call.state.in_(LIVE_STATES),
            ~((Call.provider == PROVIDER) & (Call.provider_call_id == request.reference)),
        ).order_by(Call.started_at.desc(), Call.id.desc()).limit(1)
    ).first()
    if current is not None:
        questions["on_call"] = _on_call(user, owner, current)
    if owner.id != user.id and owner.presence == "offline":
        questions["offline"] = lazy_gettext(
            "%(name)s is offline, so nobody may answer extension %(extension)s.",
            name=owner.name, extension=request.agent,
        )
    return questions, current


def resolve_agent(session: Session, user: User, agent: str | None) -> tuple[str, User | None]:
    """Which extension rings first, and whose call it is.

    Agents dial from their own extension; supervisors may dial on behalf of anyone (any
    extension or number Teleforge accepts). Raises ``DialRefused`` (403) otherwise.
    """
    requested = (agent or "").strip()
    if user.is_supervisor:
        if not requested:
            requested = user.extension or ""
        return requested, agent_user(session, normalise_number(requested))
    own = user.extension or ""
    if requested and normalise_number(requested) != own:
        raise DialRefused(
            403, lazy_gettext("Agents dial from their own extension (%(extension)s); ask a "
                              "supervisor to dial on behalf of someone else.",
                              extension=own or _NONE_SET),
            errors={"agent": lazy_gettext(
                "You can only dial from your own extension (%(extension)s).",
                extension=own or _NONE_SET)},
        )
    if not own:
        raise DialRefused(
            422, lazy_gettext("You have no extension, so the desk cannot ring you first. Ask "
                              "an administrator to give you one (users create ... --extension "
                              "EXT)."),
            errors={"agent": lazy_gettext(
                "You have no extension, so the desk cannot ring you first.")},
        )
    return own, user


def _refuse_invalid(
    session: Session, user: User, fields: dict[str, str], errors: dict[str, Any],
    warnings: dict[str, Any], message: Any = CHECK_FIELDS,
) -> NoReturn:
    """Audit a dial refused for its input, and refuse it (422, messages by field)."""
    end_reads(session)
    with force_locale("en"):  # the audit log keeps the messages in English
        audit.record(session, user_id=user.id, action="dial", outcome="invalid",
                     detail={"fields": fields, "errors": errors})
    session.commit()
    raise DialRefused(422, message, errors=errors, warnings=warnings) from None


def _end_failed(call: Call, message: Any) -> None:
    """End a dial Teleforge certainly did not place, through the same fold as its events."""
    merge(call, CallEvent(provider=call.provider, provider_call_id=call.provider_call_id,
                          kind="ended", at=utcnow(), end_cause="failed"))
    call.action_error = english(message)


def place_call(
    session: Session,
    client: TeleforgeClient | None,
    *,
    user: User,
    agent: str | None,
    callee: str,
    outbound_id: str,
    reference: str,
    attempt: str | None = None,
    confirm: bool = False,
) -> DialOutcome:
    """Check, ask, create the "dialling" row, POST to Teleforge once, audit. See the module
    doc.

    Raises ``DialRefused`` for anything decided before Teleforge is asked (bad input, a
    duplicate, not configured), ``DialNeedsConfirmation`` when the dial should be confirmed
    and ``confirm`` is false; returns a ``DialOutcome`` (possibly with ``error``) once a row
    exists.
    """
    if client is None:
        raise DialRefused(
            503, lazy_gettext("Click-to-dial is not configured: set DESK_TELEFORGE_URL to your "
                              "Teleforge PBX (for example http://pbx:8300) and restart the "
                              "desk.")
        )
    agent_value, owner = resolve_agent(session, user, agent)
    generated = not reference.strip()
    if generated:
        reference = reference_for_attempt(attempt) or generate_reference()
    fields = {"agent": agent_value, "callee": callee, "outbound_id": outbound_id,
              "reference": reference}
    try:
        request = validate_dial(agent_value, callee, outbound_id, reference)
    except DialInvalid as exc:
        errors = dict(exc.errors)
        if "agent" not in errors and (
            nobody := unknown_extension(session, normalise_number(agent_value))
        ):
            errors["agent"] = nobody  # every mistake at once
        _refuse_invalid(session, user, fields, errors, exc.warnings)
    if nobody := unknown_extension(session, request.agent):
        _refuse_invalid(session, user, fields, {"agent": nobody}, request.warnings, nobody)

    questions, current = questions_before_dialling(session, user, owner, request)
    if questions and not confirm:
        raise DialNeedsConfirmation(questions, current)

    call = ingest.start_outbound(
        session, provider=PROVIDER, provider_call_id=request.reference,
        agent_id=owner.id if owner else None, from_number=request.agent,
        to_number=request.callee, outbound_id=request.outbound_id,
    )
    if call is None:
        existing = session.scalars(
            select(Call).where(Call.provider == PROVIDER,
                               Call.provider_call_id == request.reference)
        ).first()
        if existing is not None and not can_see(user, existing):
            existing = None  # another agent's ended call: its number is not this user's to see
        message: Any
        if generated:
            message = lazy_gettext(
                "This dial was sent already (call to %(number)s); it was not placed again.",
                number=(existing.to_number if existing else None) or "?",
            )
        else:
            message = lazy_gettext(
                "A call with reference %(reference)s exists already; it was not placed again. "
                "Use a new reference, or leave it empty to have one generated.",
                reference=repr(request.reference),
            )
        raise DialRefused(
            409, message, errors={} if generated else {"reference": REFERENCE_USED},
            call=existing,
        )

    wire = payload(request, client.version)
    detail: dict[str, Any] = {"request": wire, "url": client.url}
    if owner is not None and owner.id != user.id:
        detail["on_behalf_of"] = owner.name
    if questions:
        detail["confirmed"] = questions
    if request.warnings:
        detail["warnings"] = request.warnings
    outcome = DialOutcome(call=call, request=request, reference_generated=generated,
                          warnings=dict(request.warnings))
    try:
        outcome.result = client.dial(request)
    except TeleforgeError as exc:
        outcome.error = exc
        if exc.may_have_dialled:
            call.action_error = english(exc.message)
            call.version = (call.version or 0) + 1
        else:
            _end_failed(call, exc.message)
        mark_changed(session, CALLS, call.id)
        if call.agent_id:
            mark_changed(session, AGENTS, call.agent_id)
        with force_locale("en"):  # the audit log keeps the messages in English
            audit.record(
                session, user_id=user.id, call_id=call.id, action="dial",
                outcome="refused" if exc.kind == "rejected" else "error",
                detail={**detail, "kind": exc.kind, "may_have_dialled": exc.may_have_dialled},
                provider_answer={"status": exc.status, "body": exc.body,
                                 "message": exc.message},
            )
    else:
        with force_locale("en"):
            audit.record(
                session, user_id=user.id, call_id=call.id, action="dial", outcome="ok",
                detail=detail,
                provider_answer={"status": outcome.result.status, "body": outcome.result.body},
            )
    session.commit()
    return outcome


def error_status(error: TeleforgeError) -> int:
    """The HTTP status that tells a client what kind of failure it was."""
    if error.kind == "rejected":
        return 422
    if error.kind == "timeout":
        return 504
    return 502
