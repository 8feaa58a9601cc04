"""``/routing``: the supervisor page that edits the inbound routing rules, with a preview.

The form is a plain HTML form (works without JavaScript) mapped onto the rules document of
``desk.services.routing_store``. Every field is checked on the server, and every mistake is
reported, not only the first: each bad line of the ring groups and the blocked callers with
its line number and what to type. A form with mistakes comes back as it was typed, each
message beside its field (the first such field has the focus), answers 400 and stores
nothing. A good one replaces the rules in one transaction together with its audit entry
(``routing.update``, the rules before and after). ``?from=…&to=…`` previews where such a
call would go right now, with the answer the provider would get; its numbers are checked
with the same checks and messages as the rules' numbers, and a bad one is answered 400 with
the message beside its field and no preview. The page has the boards' header.

A called number's row rings the agents ticked, or sends calls somewhere by id: a queue, or
a Placetel prompt, group (with Placetel's ring time of 10 to 60 s and an optional backup
routing object) or routing plan. Only Placetel can do the last three; the preview says what
Stringee and the mediaservice do instead (``Decision.portable``). The row's id field is
``target-N-id`` with its kind in ``target-N-kind``; ``target-N-queue`` is still read as a
queue id, so forms and scripts written before the kinds existed keep working.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from babel.lists import format_list
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import LazyString, get_locale, gettext, lazy_gettext, pgettext
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from desk.domain.routing import (
    BLOCKED_ACTIONS,
    DEFAULT_GROUP_RING_TIME,
    DEFAULT_RING_TIME,
    FALLBACKS,
    GROUP_RING_TIMES,
    Decision,
    Rules,
    normalize_number,
)
from desk.errors import InputProblem
from desk.extensions import db, hub
from desk.models import User
from desk.providers.placetel.route import render_route
from desk.providers.stringee.answers import scco_for_decision
from desk.services import audit, queries
from desk.services.routing_store import (
    IDENT_TARGETS,
    MAX_RING_TIME,
    check_called_number,
    check_group_ring_time,
    check_ident,
    check_number,
    check_ring_time,
    decide_for_call,
    load_rules,
    rules_from_document,
    rules_to_document,
    save_rules,
)
from desk.web import bp
from desk.web.auth import supervisor_required

BLANK_TARGET_ROWS = 2
MAX_TARGET_ROWS = 200
_TARGET_FIELD = re.compile(r"^target-(\d{1,3})-(number|queue|agents|kind|id|ringtime|backup)$")
_SPLIT = re.compile(r"[,;]+")  # blocked callers: several on a line
# Where a row can send calls by id, in the order the form offers them: kind → label
# (in the reader's language; desk.domain.routing.TARGET_LABELS has the English ones).
TARGET_KINDS: dict[str, LazyString] = {
    "queue": lazy_gettext("Queue"),
    "prompt": lazy_gettext("Placetel prompt"),
    "group": lazy_gettext("Placetel group"),
    "routing_plan": lazy_gettext("Placetel routing plan"),
}
# A row's id field, as its messages name it.
_ID_LABELS: dict[str, LazyString] = {
    "queue": lazy_gettext("Queue id"),
    "prompt": lazy_gettext("Placetel prompt id"),
    "group": lazy_gettext("Placetel group id"),
    "routing_plan": lazy_gettext("Placetel routing plan id"),
}
_DOCUMENT_FIELD = {kind: name for name, kind in IDENT_TARGETS.items()}

T = TypeVar("T")


@dataclass
class TargetRow:
    number: str = ""
    target_id: str = ""
    agent_ids: set[int] = field(default_factory=set)
    kind: str = "queue"
    ring_time: str = ""  # a Placetel group's ring time
    backup: str = ""  # a Placetel group's backup routing object

    @property
    def blank(self) -> bool:
        return not (self.number or self.target_id or self.agent_ids or self.ring_time
                    or self.backup)


@dataclass
class RoutingForm:
    """What the form shows: strings as typed, so a rejected form comes back as it was sent."""

    blocked_callers: str = ""
    blocked_action: str = "reject"
    ring_time: str = str(DEFAULT_RING_TIME)
    ring_groups: str = ""
    when_nobody: str = "voicemail"
    queue_id: str = ""
    record: bool = False
    music_on_hold: bool = False
    forward_announcement: str = ""
    voicemail_announcement: str = ""
    targets: list[TargetRow] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)  # field → every problem in it

    @classmethod
    def from_rules(cls, rules: Rules, agents: Sequence[User]) -> RoutingForm:
        names = {agent.id: agent.name for agent in agents}
        targets = []
        for number, target in rules.targets.items():
            ids = set(target.agent_ids) | {i for g in target.ring_groups for i in g.agent_ids}
            placetel = target.placetel_target
            kind, ident = placetel if placetel else ("queue", target.queue_id or "")
            targets.append(TargetRow(
                number, ident, ids & set(names), kind,
                ring_time=str(target.group_ring_time or ""),
                backup=target.backup_routing_object or "",
            ))
        groups = []
        for group in rules.ring_groups:
            members = ", ".join(names[i] for i in group.agent_ids if i in names)
            if members:
                groups.append(f"{members} : {group.ring_time}")
        return cls(
            blocked_callers="\n".join(rules.blocked_callers),
            blocked_action=rules.blocked_action,
            ring_time=str(rules.ring_time),
            ring_groups="\n".join(groups),
            when_nobody=rules.when_nobody,
            queue_id=rules.queue_id or "",
            record=rules.record,
            music_on_hold=bool(rules.music_on_hold),
            forward_announcement=rules.forward_announcement or "",
            voicemail_announcement=rules.voicemail_announcement or "",
            targets=targets,
        )

    @classmethod
    def from_request(cls, form: MultiDict[str, str]) -> RoutingForm:
        def text(name: str) -> str:
            return (form.get(name) or "").strip()

        rows: dict[int, TargetRow] = {}
        for key in form:
            match = _TARGET_FIELD.match(key)
            if not match or int(match.group(1)) >= MAX_TARGET_ROWS:
                continue
            row = rows.setdefault(int(match.group(1)), TargetRow())
            part = match.group(2)
            if part == "number":
                row.number = text(key)
            elif part == "queue":  # the field's name before rows had kinds
                row.kind, row.target_id = "queue", text(key)
            elif part == "id":
                row.target_id = text(key)
            elif part == "kind":
                row.kind = text(key)
            elif part == "ringtime":
                row.ring_time = text(key)
            elif part == "backup":
                row.backup = text(key)
            else:
                row.agent_ids = {int(v) for v in form.getlist(key)
                                 if v.isascii() and v.isdigit() and len(v) < 10}
        return cls(
            blocked_callers=text("blocked_callers"),
            blocked_action=text("blocked_action"),
            ring_time=text("ring_time"),
            ring_groups=text("ring_groups"),
            when_nobody=text("when_nobody"),
            queue_id=text("queue_id"),
            record=form.get("record") == "on",
            music_on_hold=form.get("music_on_hold") == "on",
            forward_announcement=text("forward_announcement"),
            voicemail_announcement=text("voicemail_announcement"),
            targets=[rows[i] for i in sorted(rows)],
        )

    def rows_for_display(self) -> list[TargetRow]:
        return [row for row in self.targets if not row.blank] + [
            TargetRow() for _ in range(BLANK_TARGET_ROWS)
        ]

    # -- validation -------------------------------------------------------------------

    def refuse(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    @property
    def first_error(self) -> str | None:
        """The first field with a problem, in the order the page shows them: its focus."""
        order = ["ring_time", "ring_groups", *(f"target-{i}" for i in range(len(self.targets))),
                 "when_nobody", "queue_id", "blocked_callers", "blocked_action",
                 "forward_announcement", "voicemail_announcement"]
        return next((name for name in order if name in self.errors), None)

    def _check(self, name: str, check: Callable[..., T], *args: Any) -> T | None:
        try:
            return check(*args)
        except ValueError as exc:
            self.refuse(name, _said(exc))
            return None

    def _ring_groups(self, agents: Sequence[User], ring_time: int) -> list[dict[str, Any]]:
        """One group per line; every line with a mistake is reported, each with its number."""
        by_name = {agent.name.lower(): agent.id for agent in agents}
        groups = []
        for number, line in enumerate(self.ring_groups.splitlines(), start=1):
            if not line.strip():
                continue
            names, _, seconds = line.partition(":")
            where = gettext("Ring groups, line %(line)s", line=number)
            wanted = [name for name in (n.strip() for n in names.split(",")) if name]
            unknown = [name for name in wanted if name.lower() not in by_name]
            group_time = self._seconds("ring_groups", seconds.strip() or str(ring_time), where)
            if not wanted:
                self.refuse("ring_groups", gettext(
                    "%(where)s: name at least one agent, then optionally ': seconds', "
                    "e.g. %(example)s : 20", where=where, example=_example(agents)))
            elif unknown:
                named = _either([repr(name[:40]) for name in unknown[:5]])
                self.refuse("ring_groups", gettext(
                    "%(where)s: there is no agent named %(names)s; the agents are %(agents)s",
                    where=where, names=named, agents=_names(agents)))
            elif group_time is not None:
                groups.append({"agent_ids": [by_name[name.lower()] for name in wanted],
                               "ring_time": group_time})
        return groups

    def _blocked(self) -> list[str]:
        """Numbers one per line (or separated by , or ;); every bad one is reported."""
        numbers = []
        for number, line in enumerate(self.blocked_callers.splitlines(), start=1):
            for entry in _SPLIT.split(line):
                if not entry.strip():
                    continue
                value = self._check("blocked_callers", check_number, entry,
                                    gettext("Blocked callers, line %(line)s", line=number))
                if value is not None:
                    numbers.append(value)
        return numbers

    def _seconds(self, name: str, raw: str, label: str) -> int | None:
        # isascii: str.isdigit() also takes "²", which int() refuses
        value: Any = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else raw
        return self._check(name, check_ring_time, value, label)

    def _id_target(self, key: str, row: TargetRow) -> dict[str, Any] | None:
        """The document's target for a row sending calls to a queue, prompt, group or plan."""
        ident = self._check(key, check_ident, row.target_id, str(_ID_LABELS[row.kind]))
        if ident is None:
            return None
        target: dict[str, Any] = {_DOCUMENT_FIELD[row.kind]: ident}
        if row.ring_time:
            raw = row.ring_time
            value: Any = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else raw
            # Only a group's row gets here (to_document refuses the options elsewhere).
            seconds = self._check(key, check_group_ring_time, value,
                                  gettext("Placetel group ring time"))
            if seconds is None:
                return None
            target["group_ring_time"] = seconds
        if row.backup:
            backup = self._check(key, check_ident, row.backup, gettext("Backup routing object"))
            if backup is None:
                return None
            target.update(backup_behaviour="routing_object", backup_routing_object=backup)
        return target

    def to_document(self, agents: Sequence[User]) -> dict[str, Any] | None:
        """The rules document, or None with ``errors`` filled in field by field."""
        self.errors = {}
        known = {agent.id for agent in agents}

        blocked = self._blocked()
        if self.blocked_action not in BLOCKED_ACTIONS:
            self.refuse("blocked_action", gettext("Choose what blocked callers get."))
        ring_time = (self._seconds("ring_time", self.ring_time, gettext("Ring time"))
                     or DEFAULT_RING_TIME)
        groups = self._ring_groups(agents, ring_time)
        if self.when_nobody not in FALLBACKS:
            self.refuse("when_nobody", gettext("Choose what happens when nobody can take a call."))
        queue_id = None
        if self.queue_id:
            queue_id = self._check("queue_id", check_ident, self.queue_id, gettext("Queue id"))
        elif self.when_nobody == "queue":
            self.refuse("queue_id", gettext("Queue id: needed when such calls go to a queue; "
                                            "type the queue's id, such as 123."))
        announcements = {
            name: self._check(name, check_ident, getattr(self, name), label) if getattr(
                self, name) else None
            for name, label in (("forward_announcement", gettext("Announcement before ringing")),
                                ("voicemail_announcement", gettext("Voicemail announcement")))
        }

        targets: dict[str, Any] = {}
        seen: set[str] = set()
        for index, row in enumerate(self.targets):
            if row.blank:
                continue
            key = f"target-{index}"
            if not row.number:
                self.refuse(key, gettext("Number: which called number is this row for? Type "
                                         "it, such as 0221 2919 1000."))
                continue
            number = self._check(key, check_called_number, row.number, gettext("Number"))
            if number is None:
                continue
            if normalize_number(number) in seen:
                self.refuse(key, gettext("Number: %(number)s has two rows; keep one.",
                                         number=number))
            elif bool(row.target_id) == bool(row.agent_ids):
                self.refuse(key, gettext("%(number)s: tick the agents to ring or give the id "
                                         "of a queue, prompt, group or routing plan, not both "
                                         "and not neither.", number=number))
            elif row.kind not in TARGET_KINDS:
                self.refuse(key, gettext("%(number)s: choose where its calls go.",
                                         number=number))
            elif (row.ring_time or row.backup) and (row.agent_ids or row.kind != "group"):
                self.refuse(key, gettext("%(number)s: a group ring time and a backup routing "
                                         "object are for a Placetel group only.",
                                         number=number))
            elif row.target_id:
                target = self._id_target(key, row)
                if target is not None:
                    targets[number] = target
            elif row.agent_ids - known:
                self.refuse(key, gettext("%(number)s: an agent ticked there no longer exists.",
                                         number=number))
            else:
                targets[number] = {"agent_ids": sorted(row.agent_ids)}
            seen.add(normalize_number(number))

        if self.errors:
            return None
        document = {
            "blocked_callers": blocked,
            "blocked_action": self.blocked_action,
            "targets": targets,
            "ring_groups": groups,
            "ring_time": ring_time,
            "when_nobody": self.when_nobody,
            "queue_id": queue_id,
            "record": self.record,
            "music_on_hold": True if self.music_on_hold else None,
            **announcements,
        }
        try:  # the one validator of the stored document has the last word
            rules_from_document(document, known)
        except ValueError as exc:
            self.refuse("form", _said(exc))
            return None
        return document


def _said(exc: ValueError) -> str:
    """A check's refusal as the page shows it: in the reader's language (``str()`` of an
    ``InputProblem`` stays English, for the log and the API)."""
    return exc.translated() if isinstance(exc, InputProblem) else str(exc)


def _either(names: list[str]) -> str:
    """'ann' or 'bob' (or 'cy'...), as the page's language lists alternatives."""
    return format_list(names, style="or", locale=get_locale() or "en")


def _names(agents: Sequence[User], most: int = 8) -> str:
    """The agents' names as the ring groups take them, for a message saying what to type."""
    if not agents:
        return gettext("none yet (create agents first)")
    names = ", ".join(agent.name for agent in agents[:most])
    if len(agents) > most:
        return gettext("%(names)s and %(num)s more", names=names, num=len(agents) - most)
    return names


def explain(decision: Decision) -> str:
    """Why ``decision`` was taken, in the page's language (its English ``reason`` when it
    carries no ``Why``)."""
    return decision.why.words(gettext) if decision.why is not None else decision.reason


def action_label(action: str) -> str:
    """What the preview calls a decision's action (``desk.domain.routing.ACTIONS``)."""
    labels = {
        "ring": pgettext("routing action", "ring"),
        "queue": pgettext("routing action", "queue"),
        "voicemail": pgettext("routing action", "voicemail"),
        "reject": pgettext("routing action", "reject"),
        "busy": pgettext("routing action", "busy"),
        "hangup": pgettext("routing action", "hang up"),
        "prompt": pgettext("routing action", "prompt"),
        "group": pgettext("routing action", "group"),
        "routing_plan": pgettext("routing action", "routing plan"),
    }
    return str(labels.get(action, action))


def _example(agents: Sequence[User]) -> str:
    return ", ".join(agent.name for agent in agents[:2]) or "ann, bob"


def _agents() -> list[User]:
    return list(db.session.scalars(select(User).where(User.role == "agent").order_by(User.name)))


PREVIEW_VIA = {"placetel": "Placetel", "stringee": "Stringee"}


def _preview() -> dict[str, Any] | None:
    """Where a call from ``from`` to ``to`` would go now, and the provider's answer; for a
    Placetel-only decision also what the other providers do instead. Numbers are checked
    as the rules' numbers are: a bad one gets ``problems`` (field → message) and no answer."""
    caller, called = request.args.get("from"), request.args.get("to")
    if caller is None and called is None:
        return None
    caller, called = (caller or "").strip(), (called or "").strip()
    via = (request.args.get("via") or "placetel").strip()
    problems: dict[str, str] = {}
    if caller:
        try:
            check_number(caller, gettext("From"))
        except ValueError as exc:
            problems["from"] = _said(exc)
    if not called:
        problems["to"] = gettext("To: type the number the call is made to, such as "
                                 "0221 2919 1000.")
    else:
        try:
            check_called_number(called, gettext("To"))
        except ValueError as exc:
            problems["to"] = _said(exc)
    if via not in PREVIEW_VIA:
        problems["via"] = gettext("Provider: choose %(providers)s.",
                                  providers=_either(list(PREVIEW_VIA.values())))
    shown = {"from": caller[:200], "to": called[:200], "via": via[:40], "problems": problems}
    if problems:
        return shown
    full = decide_for_call(
        db.session(), caller or None, called,
        reachable_by="sip_peer" if via == "placetel" else "stringee_user_id", portable=False,
    )
    elsewhere = full.portable()
    if via == "placetel":
        decision = full
        answer = render_route(decision).decode()
    else:
        decision = elsewhere
        answer = json.dumps(scco_for_decision(decision, {"from": caller, "to": called}),
                            indent=2)
    # Said whichever provider is previewed: the supervisor chose a Placetel-only target.
    note = (gettext("Stringee and the mediaservice cannot: %(reason)s (%(action)s).",
                    reason=explain(elsewhere), action=action_label(elsewhere.action))
            if full.placetel_only else None)
    return {**shown, "decision": decision, "answer": answer, "note": note,
            "action": action_label(decision.action), "reason": explain(decision)}


def _render(form: RoutingForm, agents: list[User], status: int = 200) -> tuple[str, int]:
    preview = _preview()
    if preview and preview["problems"] and status == 200:
        status = 400
    return render_template(
        "supervisor/routing.html", me=current_user, counts=queries.state_counts(db.session()),
        hub=hub, form=form, agents=agents, preview=preview,
        blocked_actions=BLOCKED_ACTIONS, fallbacks=FALLBACKS, max_ring_time=MAX_RING_TIME,
        target_kinds=TARGET_KINDS, group_ring_times=GROUP_RING_TIMES,
        default_group_ring_time=DEFAULT_GROUP_RING_TIME,
    ), status


@bp.route("/routing", methods=["GET", "POST"], endpoint="routing")
@login_required
@supervisor_required
def routing_page() -> ResponseReturnValue:
    agents = _agents()
    if request.method == "GET":
        return _render(RoutingForm.from_rules(load_rules(db.session()), agents), agents)

    form = RoutingForm.from_request(request.form)
    document = form.to_document(agents)
    if document is None:
        return _render(form, agents, 400)
    before = rules_to_document(load_rules(db.session()))
    rules = rules_from_document(document)
    db.session.commit()  # end the reads: the write below starts its own transaction
    save_rules(db.session(), rules, current_user.id)
    audit.record(
        db.session(), user_id=current_user.id, action="routing.update", outcome="ok",
        detail={"before": before, "after": rules_to_document(rules)},
    )
    db.session.commit()
    flash(gettext("Routing saved. The next incoming call is routed by these rules."))
    return redirect(url_for("board.routing"))
