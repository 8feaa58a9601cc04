"""The dial form on the boards, and the Teleforge status supervisors see.

``GET /dial?number=...`` opens the board with the form filled in (CRM links, e-mail, and
``tel:`` links once the desk is registered as their handler). ``POST /dial/check?field=``
answers one field's message as the agent types (htmx), using the very rules the submit
uses. ``POST /dial`` places the call through ``desk.services.dial.place_call`` and answers the form
again: empty with a confirmation, with the messages under the fields, or with a question and
a "Dial anyway" button that sends the form again with ``confirm=1`` (the person rung first
is on a call, or offline). Form answers carry ``X-Desk-Swap`` so htmx swaps them in even
with an error status (``static/board/desk.js``).

When the agent's phone is the browser (``desk.web.softphone``), the submit goes to
``softphone.place_call`` instead: the same checks and row, and the answer carries the INVITE
the page's softphone places (``data-softphone-invite``).

``static/board/dial.js`` checks the simple rules as the person types (missing, characters,
already too long) with the very texts of ``desk.providers.teleforge.rules``, handed to it by
``checks`` in the page's language; the server's answer for the field follows and has the last
word.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from flask_login import current_user, login_required
from sqlalchemy import select

from desk.extensions import current_app_object, db
from desk.live.render import board_context
from desk.models import User
from desk.providers.teleforge import client as teleforge_client
from desk.providers.teleforge import rules
from desk.providers.teleforge.listener import listener_for
from desk.providers.teleforge.rules import REFERENCE_MAX
from desk.services import dial
from desk.web import bp, softphone
from desk.web.auth import supervisor_required

HINTS = {
    "callee": lazy_gettext("10 digits starting 0, 11 starting 27, or + and 11 to 14 digits. "
                           "Spaces, dashes and brackets are fine."),
    "outbound_id": lazy_gettext(
        "random, tvc_ and a campaign name, or a number starting 27 (11 digits)."),
    "reference": lazy_gettext("Letters, digits and . - _ ~, at most %(most)s. Left empty, the "
                              "desk makes one.", most=REFERENCE_MAX),
    "agent": lazy_gettext("The extension rung first: pick an agent from the list."),
}

# dial.js fills {n} and {chars} into the texts it is given (dial.js's ``fill``).
_FOR_SCRIPT = {"n": "{n}", "chars": "{chars}", "most": REFERENCE_MAX}


def _script_text(message: Any) -> str:
    """A rules text in the page's language, its values left for dial.js to fill in."""
    return str(message) % _FOR_SCRIPT


def checks() -> dict[str, dict[str, Any]]:
    """The rules static/board/dial.js checks while typing, with the server's own texts in
    the page's language."""
    return {
        "callee": {
            "required": _script_text(rules.NUMBER_MISSING),
            "number": True,  # normalised first, as rules.normalise_number does
            "digits": _script_text(rules.NUMBER_DIGITS),
            "allowed": "[0-9]",
            "characters": _script_text(rules.NUMBER_CHARACTERS),
            "longest": [[prefix, skip, most, _script_text(message)]
                        for prefix, skip, _fewest, most, message in rules.NUMBER_LENGTHS],
        },
        "outbound_id": {"required": _script_text(rules.OUTBOUND_MISSING)},
        "reference": {
            "length": [REFERENCE_MAX, _script_text(rules.REFERENCE_TOO_LONG)],
            "allowed": "[A-Za-z0-9._~-]",
            "characters": _script_text(rules.REFERENCE_CHARACTERS),
        },
        "agent": {"required": _script_text(rules.AGENT_MISSING)},
    }


def character_names() -> dict[str, Any]:
    """How dial.js names characters nobody can see, in the page's language."""
    return {"names": {ch: str(name) for ch, name in rules.CHARACTER_NAMES.items()},
            "most": rules.NAMED_AT_MOST}


def _people() -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.extension.is_not(None)).order_by(User.role, User.name)
    ))


def form_state(
    user: User, values: dict[str, str] | None = None, check: bool = True, **extra: Any
) -> dict[str, Any]:
    """Everything ``_dial_form.html`` shows; a fresh one-time ``attempt`` token each time.

    With ``check`` every filled-in field gets its message (error, warning, or what will be
    sent), as if the agent had just typed it.
    """
    caller_ids = teleforge_client.caller_ids(current_app_object())
    defaults = {
        "agent": user.extension or "",
        "callee": "",
        "outbound_id": caller_ids[0],
        "reference": "",
    }
    state: dict[str, Any] = {
        "value": {**defaults, **(values or {})},
        "errors": {},
        "warnings": {},
        "notes": {},
        "hints": HINTS,
        "banner": None,
        "attempt": uuid.uuid4().hex,
        "caller_ids": caller_ids,
        "people": _people() if user.is_supervisor else [],
        "checks": checks(),
        "character_names": character_names(),
        "confirm": None,
        "answer": False,
        "invite": None,
    }
    state.update(extra)
    if check:
        _notes_for(state["value"], state)
    return state


@bp.app_context_processor
def _dial_globals() -> dict[str, Any]:
    return {"dial_blank": form_state, "teleforge_status": teleforge_status}


def _notes_for(values: dict[str, str], state: dict[str, Any]) -> None:
    """Fill each non-empty field's message: its error, warning, or what will be sent."""
    for name in dial.FIELDS:
        raw = values.get(name, "")
        if not raw.strip() or name in state["errors"]:
            continue
        value, error, warning = dial.check_field(name, raw)
        if name == "agent" and not error:
            error = dial.unknown_extension(db.session(), value)
        if error:
            state["errors"][name] = error
            continue
        if warning:
            state["warnings"][name] = warning
        state["notes"][name] = _note(name, value)


def _note(name: str, value: str) -> str:
    if name == "callee":
        return gettext("Will dial %(number)s", number=value)
    if name == "outbound_id":
        return gettext("Caller ID %(caller_id)s", caller_id=value)
    if name == "agent":
        person = dial.agent_user(db.session(), value)
        if person is not None:
            return gettext("Rings %(extension)s first (%(name)s)", extension=value,
                           name=person.name)
        return gettext("Rings %(extension)s first", extension=value)
    return gettext("%(length)s/%(most)s characters", length=len(value), most=REFERENCE_MAX)


def _raw_number() -> str:
    """``number`` from the query string with a literal ``+`` kept: links people paste
    (``/dial?number=+27821234567``) rarely encode it, and as a space it would be lost."""
    for part in request.query_string.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "number":
            return unquote(value)
    return ""


def _number_from(raw: str) -> str:
    """``tel:+27-82-000-1234;ext=1`` (what a tel: handler receives) → ``+27-82-000-1234``."""
    text = unquote(raw).strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    for stop in (";", "?"):
        text = text.split(stop, 1)[0]
    return text.strip()[:64]


def _page(state: dict[str, Any], status: int = 200) -> ResponseReturnValue:
    if request.method == "POST":
        state["answer"] = True  # dial.js moves the focus: first mistake, question, or number
    if request.headers.get("HX-Request"):
        response = current_app.make_response(
            (render_template("board/_dial_form.html", dial=state, me=current_user), status)
        )
        response.headers["X-Desk-Swap"] = "1"
        return response
    template = "board/supervisor.html" if current_user.is_supervisor else "board/board.html"
    context = board_context(db.session, current_user)
    return render_template(template, dial=state, **context), status


@bp.get("/dial")
@login_required
def dial_page() -> ResponseReturnValue:
    values: dict[str, str] = {}
    if number := _raw_number():
        values["callee"] = _number_from(number)
    for name in ("outbound_id", "reference"):
        if request.args.get(name):
            values[name] = request.args[name][:400]
    if current_user.is_supervisor and request.args.get("agent"):
        values["agent"] = request.args["agent"][:64]
    return _page(form_state(current_user, values))


@bp.post("/dial/check")
@login_required
def dial_check() -> str:
    name = request.args.get("field", "")
    if name not in dial.FIELDS:
        abort(400, gettext("'field' must be one of: %(fields)s.", fields=", ".join(dial.FIELDS)))
    raw = request.form.get(name, "")
    state = form_state(current_user, check=False)
    _notes_for({name: raw}, state)
    return render_template("board/_dial_form.html", part=name, dial=state)


@bp.post("/dial")
@login_required
def dial_submit() -> ResponseReturnValue:
    form = request.form
    values = {name: form.get(name, "")[:1000] for name in dial.FIELDS}
    if not current_user.is_supervisor:
        values["agent"] = current_user.extension or ""
    user = db.session.get_one(User, current_user.id)
    app = current_app_object()
    invite = None
    try:
        if softphone.rings_in_browser(user):
            # The agent's phone is this browser (desk.web.softphone): the page INVITEs.
            if form.get("softphone") != "1":
                raise dial.DialRefused(
                    409, lazy_gettext("Your phone is this browser, and it is not connected: "
                                      "connect it under Phone, or choose your desk phone "
                                      "there."))
            outcome, invite = softphone.place_call(
                db.session(), app, user=user,
                agent=values["agent"] if user.is_supervisor else None,
                callee=values["callee"], outbound_id=values["outbound_id"],
                reference=values["reference"], attempt=form.get("attempt"),
                confirm=form.get("confirm") == "1",
            )
        else:
            outcome = dial.place_call(
                db.session(), teleforge_client.client_for(app), user=user,
                agent=values["agent"] if user.is_supervisor else None,
                callee=values["callee"], outbound_id=values["outbound_id"],
                reference=values["reference"], attempt=form.get("attempt"),
                confirm=form.get("confirm") == "1",
            )
    except dial.DialNeedsConfirmation as question:
        # Nothing was placed: the same input and the same one-time token, sent again with
        # confirm=1 by the question's button.
        state = form_state(user, values)
        state["attempt"] = form.get("attempt") or state["attempt"]
        state["confirm"] = {"text": gettext("%(questions)s Dial anyway?",
                                            questions=question.message)}
        return _page(state, question.status)
    except dial.DialRefused as refused:
        keep = refused.status != 409 or bool(refused.errors)
        state = form_state(user, values if keep else {"outbound_id": values["outbound_id"]})
        if keep:
            state["attempt"] = form.get("attempt") or state["attempt"]
            state["errors"].update(refused.errors)
        state["banner"] = {"kind": "error" if keep else "warning", "text": refused.message}
        return _page(state, refused.status)

    request_ = outcome.request
    if outcome.ok:
        text = gettext("Dialling %(number)s from %(extension)s, caller ID %(caller_id)s, "
                       "reference %(reference)s.", number=request_.callee,
                       extension=request_.agent, caller_id=request_.outbound_id,
                       reference=request_.reference)
        if not request.headers.get("HX-Request") and invite is None:
            flash(text)
            return redirect(url_for("board.index"))
        state = form_state(user, {"outbound_id": values["outbound_id"],
                                  "agent": values["agent"] if user.is_supervisor else ""})
        state["banner"] = {"kind": "ok", "text": text}
        if invite is not None:
            state["banner"]["text"] = gettext(
                "Calling %(number)s from this browser, caller ID %(caller_id)s, reference "
                "%(reference)s.", number=request_.callee, caller_id=request_.outbound_id,
                reference=request_.reference)
            state["invite"] = invite.to_json()
        if outcome.warnings:
            state["banner"]["text"] += " " + " ".join(map(str, outcome.warnings.values()))
        return _page(state)

    error = outcome.error
    assert error is not None
    # The row exists (failed or, when Teleforge may have placed it, still dialling), so this
    # attempt is used up: a new token, but the agent's input stays for a corrected retry.
    state = form_state(user, values)
    for name, message in error.field_errors.items():
        state["errors"][name] = gettext("Teleforge: %(message)s", message=message)
    state["banner"] = {"kind": "error", "text": error.message}
    return _page(state, dial.error_status(error))


# -- Teleforge status on the supervisor board -------------------------------------------------
# (Unreadable notifications become alerts, shown live by ``_alerts.html``; this is whether
# this server is taking notifications at all, and how many the consumers set aside.)


def teleforge_status() -> dict[str, Any]:
    """What ``_teleforge_status.html`` shows: this process's consumer, and what every
    consumer of this desk set aside (read from the dead-letter lists, whoever took them)."""
    app = current_app_object()
    listener = listener_for(app)
    return {
        "listener": listener,
        "listen_here": bool(app.config.get("DESK_TELEFORGE_LISTEN")),
        "set_aside": listener.set_aside() if listener is not None else None,
    }


@bp.get("/teleforge/status")
@login_required
@supervisor_required
def teleforge_status_fragment() -> str:
    return render_template("supervisor/_teleforge_status.html", status=teleforge_status())
