"""Routing rules in the database, and the routing decision for a call arriving right now.

``desk.domain.routing`` is the pure policy; this module feeds it. The rules are one JSON document
in the ``routing_config`` row (no row, or a disabled one, means ``Rules()``: every available
agent rings for 60 s, then voicemail). ``rules_from_document`` is the one validator of that
document — the supervisor page and the loader both go through it — and raises
``InputProblem`` (a ``ValueError``: English as ``str()``, the reader's language as
``translated()``) naming the field. Agents are built from the ``users`` table: only role
``agent`` is routed to, with presence as set on the board and ``active_calls`` counted from
live calls. ``decide_for_call`` is what every provider webhook calls (Placetel's IncomingCall,
Stringee's number answer URL, mediaservice's newCall), so one set of rules answers them all;
only Placetel gets its own prompts, groups and routing plans, every other provider their
fallback (``Decision.portable``). What a provider was told to ring is kept on the call with
``record_offer`` (``Call.offered_to``); ``rings_for`` says whether a call rings an agent now,
which is what boards mark *ringing for you* and what the CRM gets a screen pop for.

The document (every field optional; a target holds exactly one of ``agent_ids``,
``ring_groups``, ``queue_id``, ``prompt_id``, ``group_id``, ``routing_plan_id``, and a group
may add Placetel's ``group_ring_time`` (10 to 60), ``backup_behaviour`` (``mailbox`` or
``routing_object``) and ``backup_routing_object``)::

    {"blocked_callers": ["022129191999", "anonymous"], "blocked_action": "busy",
     "targets": {"0221999": {"agent_ids": [1, 2]}, "0221888": {"queue_id": "123"},
                 "0221777": {"ring_groups": [{"agent_ids": [1], "ring_time": 20}]},
                 "0221666": {"group_id": "12", "group_ring_time": 30},
                 "0221555": {"prompt_id": "7"}, "0221444": {"routing_plan_id": "3"}},
     "ring_groups": [{"agent_ids": [1, 2], "ring_time": 30}, {"agent_ids": [3]}],
     "ring_time": 60, "when_nobody": "queue", "queue_id": "123", "record": false,
     "music_on_hold": true, "forward_announcement": "7684", "voicemail_announcement": "4"}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Table, bindparam, func, select, update

from desk.db import SessionLike
from desk.domain.routing import (
    BACKUP_BEHAVIOURS,
    BLOCKED_ACTIONS,
    DEFAULT_RING_TIME,
    FALLBACKS,
    GROUP_RING_TIMES,
    Address,
    Agent,
    Decision,
    NumberTarget,
    Presence,
    RingGroup,
    Rules,
    decide,
    normalize_number,
)
from desk.errors import N_, InputProblem
from desk.live.changes import CALLS, mark_changed
from desk.models import LIVE_STATES, Call, RoutingConfig, User, utcnow
from desk.services.wrapup import effective_presence

log = logging.getLogger(__name__)

MAX_RING_TIME = 600  # ten minutes of ringing is already more than anyone waits
MAX_ENTRIES = 500  # blocked callers, targets, groups: enough for a call centre, bounded

FIELDS = (
    "blocked_callers", "blocked_action", "targets", "ring_groups", "ring_time", "when_nobody",
    "queue_id", "record", "music_on_hold", "forward_announcement", "voicemail_announcement",
)
# A number as people and providers write it (formatting allowed), or Placetel's "anonymous".
_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")
# Queue and announcement ids: Placetel shows them as numbers ("123", "7684"); allow a token.
_IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Choice = TypeVar("Choice", bound=str)


# --- field validators (also used by the supervisor page) --------------------------------
# Each raises ``InputProblem``: ``field`` is the document's path ("targets['0221']") or, from
# the page, the field's label in the reader's language; ``value`` is what was given, quoted.


def _shown(value: Any) -> str:
    """What was given, as a message quotes it: its first 40 characters, in quotes."""
    return repr(str(value)[:40])


def check_number(value: Any, field: str) -> str:
    """A phone number as stored in rules (stripped); ``anonymous`` is allowed for callers."""
    if not isinstance(value, str) or not value.strip():
        raise InputProblem(N_("%(field)s: expected a phone number, got %(value)s"),
                           field=field, value=_shown(value))
    text = value.strip()
    normal = normalize_number(text)
    if normal != "anonymous" and not _NUMBER.match(normal):
        raise InputProblem(
            N_("%(field)s: %(value)s is not a phone number (digits, optionally a leading + "
               "or 00, spaces and dashes allowed) or 'anonymous'"),
            field=field, value=_shown(text),
        )
    return text


def check_called_number(value: Any, field: str) -> str:
    """A number calls are made to: a phone number as ``check_number`` takes it, never
    ``anonymous`` (which only names callers)."""
    text = check_number(value, field)
    if normalize_number(text) == "anonymous":
        raise InputProblem(N_("%(field)s: a called number is digits such as 0221 2919 1000; "
                              "'anonymous' only names callers"), field=field)
    return text


def check_ident(value: Any, field: str) -> str:
    """A queue or announcement id such as ``123``."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not _IDENT.match(text):
        raise InputProblem(
            N_("%(field)s: must be an id such as 123 (letters, digits, - or _, at most 64), "
               "not %(value)s"),
            field=field, value=_shown(value),
        )
    return text


def check_ring_time(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RING_TIME:
        raise InputProblem(N_("%(field)s: must be whole seconds from 1 to %(max)s, not "
                              "%(value)s"), field=field, max=MAX_RING_TIME, value=_shown(value))
    return value


def _check_flag(value: Any, field: str, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        raise InputProblem(N_("%(field)s: must be true or false, not %(value)s"), field=field,
                           value=_shown(value))
    return value


def _check_choice(value: Any, field: str, allowed: tuple[Choice, ...]) -> Choice:
    for choice in allowed:
        if value == choice:
            return choice
    raise InputProblem(N_("%(field)s: must be one of %(choices)s, not %(value)s"), field=field,
                       choices=", ".join(allowed), value=_shown(value))


def _check_agent_ids(value: Any, field: str, known: Collection[int] | None) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InputProblem(N_("%(field)s: expected a non-empty list of agent ids"), field=field)
    ids: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise InputProblem(N_("%(field)s: agent ids are whole numbers above 0, not "
                                  "%(value)s"), field=field, value=repr(item))
        if known is not None and item not in known:
            raise InputProblem(N_("%(field)s: there is no agent with id %(id)s"), field=field,
                               id=item)
        if item not in ids:
            ids.append(item)
    return tuple(ids)


def _optional_ident(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        return None
    return check_ident(value, name)


def _ring_groups(
    value: Any, field: str, default_time: int, known: Collection[int] | None
) -> tuple[RingGroup, ...]:
    if not isinstance(value, list | tuple):
        raise InputProblem(N_("%(field)s: expected a list of %(shape)s objects"), field=field,
                           shape="{agent_ids, ring_time}")
    if len(value) > MAX_ENTRIES:
        raise InputProblem(N_("%(field)s: at most %(max)s groups"), field=field,
                           max=MAX_ENTRIES)
    groups = []
    for index, group in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(group, Mapping):
            raise InputProblem(N_("%(field)s: expected an object with agent_ids and ring_time"),
                               field=where)
        extra = set(group) - {"agent_ids", "ring_time"}
        if extra:
            raise InputProblem(N_("%(field)s: unknown field %(name)s"), field=where,
                               name=repr(sorted(extra)[0]))
        ids = _check_agent_ids(group.get("agent_ids"), f"{where}.agent_ids", known)
        ring_time = group.get("ring_time", default_time)
        groups.append(RingGroup(ids, check_ring_time(ring_time, f"{where}.ring_time")))
    return tuple(groups)


TARGET_KINDS = ("agent_ids", "ring_groups", "queue_id", "prompt_id", "group_id",
                "routing_plan_id")
"""What a number's target can be, as the document names it: exactly one per target."""
GROUP_OPTIONS = ("group_ring_time", "backup_behaviour", "backup_routing_object")
IDENT_TARGETS = {"queue_id": "queue", "prompt_id": "prompt", "group_id": "group",
                 "routing_plan_id": "routing_plan"}
"""Targets named by a Placetel id, and the kind the routing page calls each."""


def check_group_ring_time(value: Any, field: str) -> int:
    low, high = GROUP_RING_TIMES
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputProblem(N_("%(field)s: must be whole seconds from %(low)s to %(high)s "
                              "(Placetel's range for a group), not %(value)s"),
                           field=field, low=low, high=high, value=_shown(value))
    return value


def _group_target(value: Mapping[str, Any], field: str) -> NumberTarget:
    ring_time = value.get("group_ring_time")
    behaviour = value.get("backup_behaviour")
    backup = value.get("backup_routing_object")
    if behaviour is not None:
        behaviour = _check_choice(behaviour, f"{field}.backup_behaviour", BACKUP_BEHAVIOURS)
    if backup is not None and backup != "":
        backup = check_ident(backup, f"{field}.backup_routing_object")
        behaviour = behaviour or "routing_object"
    else:
        backup = None
    if behaviour == "routing_object" and backup is None:
        raise InputProblem(N_("%(field)s: needed when the backup is a routing object"),
                           field=f"{field}.backup_routing_object")
    return NumberTarget(
        group_id=check_ident(value["group_id"], f"{field}.group_id"),
        group_ring_time=None if ring_time is None else check_group_ring_time(
            ring_time, f"{field}.group_ring_time"),
        backup_behaviour=behaviour,
        backup_routing_object=backup,
    )


def _target(
    value: Any, field: str, default_time: int, known: Collection[int] | None
) -> NumberTarget:
    if not isinstance(value, Mapping):
        raise InputProblem(N_("%(field)s: expected an object with one of %(kinds)s"),
                           field=field, kinds=", ".join(TARGET_KINDS))
    given = [name for name in TARGET_KINDS if value.get(name)]
    extra = set(value) - set(TARGET_KINDS) - set(GROUP_OPTIONS)
    if extra:
        raise InputProblem(N_("%(field)s: unknown field %(name)s"), field=field,
                           name=repr(sorted(extra)[0]))
    if len(given) != 1:
        raise InputProblem(N_("%(field)s: give exactly one of agents (agent_ids), ring groups, "
                              "a queue id or a Placetel prompt, group or routing plan id"),
                           field=field)
    options = [name for name in GROUP_OPTIONS if value.get(name) not in (None, "")]
    if options and given != ["group_id"]:
        raise InputProblem(N_("%(field)s: only a Placetel group (group_id) has it"),
                           field=f"{field}.{options[0]}")
    if given == ["group_id"]:
        return _group_target(value, field)
    if given[0] in IDENT_TARGETS:
        name = given[0]
        ident = check_ident(value[name], f"{field}.{name}")
        return NumberTarget(
            queue_id=ident if name == "queue_id" else None,
            prompt_id=ident if name == "prompt_id" else None,
            routing_plan_id=ident if name == "routing_plan_id" else None,
        )
    if given == ["agent_ids"]:
        return NumberTarget(
            agent_ids=_check_agent_ids(value["agent_ids"], f"{field}.agent_ids", known)
        )
    return NumberTarget(
        ring_groups=_ring_groups(value["ring_groups"], f"{field}.ring_groups", default_time, known)
    )


def rules_from_document(
    doc: Mapping[str, Any] | None, known_agents: Collection[int] | None = None
) -> Rules:
    """Validate the stored/edited JSON document and build ``Rules`` from it.

    ``known_agents``, when given, are the agent ids that exist; naming another is an error
    (the page passes it; the loader does not, so a deleted agent is simply not rung).
    Raises ``InputProblem`` (a ``ValueError``) whose message starts with the field it is
    about.
    """
    if doc is None:
        return Rules()
    if not isinstance(doc, Mapping):
        raise InputProblem(N_("%(field)s: expected a JSON object"), field="rules")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise InputProblem(N_("%(field)s: unknown field (known: %(known)s)"), field=unknown[0],
                           known=", ".join(FIELDS))

    ring_time = check_ring_time(doc.get("ring_time", DEFAULT_RING_TIME), "ring_time")

    blocked = doc.get("blocked_callers", [])
    if not isinstance(blocked, list | tuple) or len(blocked) > MAX_ENTRIES:
        raise InputProblem(N_("%(field)s: expected a list of at most %(max)s numbers"),
                           field="blocked_callers", max=MAX_ENTRIES)
    callers = tuple(
        dict.fromkeys(check_number(n, f"blocked_callers[{i}]") for i, n in enumerate(blocked))
    )

    targets_doc = doc.get("targets", {})
    if not isinstance(targets_doc, Mapping) or len(targets_doc) > MAX_ENTRIES:
        raise InputProblem(N_("%(field)s: expected an object of at most %(max)s numbers"),
                           field="targets", max=MAX_ENTRIES)
    targets: dict[str, NumberTarget] = {}
    seen: dict[str, str] = {}
    for number, target in targets_doc.items():
        checked = check_called_number(number, f"targets[{str(number)[:40]!r}]")
        normal = normalize_number(checked)
        if normal in seen:
            raise InputProblem(N_("%(field)s: the same number as %(other)s"),
                               field=f"targets[{checked!r}]", other=repr(seen[normal]))
        seen[normal] = checked
        targets[checked] = _target(target, f"targets[{checked!r}]", ring_time, known_agents)

    when_nobody = _check_choice(doc.get("when_nobody", "voicemail"), "when_nobody", FALLBACKS)
    queue_id = _optional_ident(doc, "queue_id")
    if when_nobody == "queue" and queue_id is None:
        raise InputProblem(N_("%(field)s: needed when calls nobody can take go to a queue"),
                           field="queue_id")
    return Rules(
        blocked_callers=callers,
        blocked_action=_check_choice(
            doc.get("blocked_action", "reject"), "blocked_action", BLOCKED_ACTIONS
        ),
        targets=targets,
        ring_groups=_ring_groups(doc.get("ring_groups", []), "ring_groups", ring_time,
                                 known_agents),
        ring_time=ring_time,
        when_nobody=when_nobody,
        queue_id=queue_id,
        record=bool(_check_flag(doc.get("record", False), "record")),
        music_on_hold=_check_flag(doc.get("music_on_hold"), "music_on_hold", allow_none=True),
        forward_announcement=_optional_ident(doc, "forward_announcement"),
        voicemail_announcement=_optional_ident(doc, "voicemail_announcement"),
    )


def _groups_document(groups: tuple[RingGroup, ...]) -> list[dict[str, Any]]:
    return [{"agent_ids": list(g.agent_ids), "ring_time": g.ring_time} for g in groups]


def rules_to_document(rules: Rules) -> dict[str, Any]:
    """The JSON document for ``rules``; ``rules_from_document`` reads it back unchanged."""
    targets: dict[str, Any] = {}
    for number, target in rules.targets.items():
        if target.group_id:
            group: dict[str, Any] = {"group_id": target.group_id}
            for name in GROUP_OPTIONS:
                if getattr(target, name) is not None:
                    group[name] = getattr(target, name)
            targets[number] = group
        elif target.queue_id or target.prompt_id or target.routing_plan_id:
            name = next(n for n in IDENT_TARGETS if getattr(target, n))
            targets[number] = {name: getattr(target, name)}
        elif target.agent_ids:
            targets[number] = {"agent_ids": list(target.agent_ids)}
        else:
            targets[number] = {"ring_groups": _groups_document(target.ring_groups)}
    return {
        "blocked_callers": list(rules.blocked_callers),
        "blocked_action": rules.blocked_action,
        "targets": targets,
        "ring_groups": _groups_document(rules.ring_groups),
        "ring_time": rules.ring_time,
        "when_nobody": rules.when_nobody,
        "queue_id": rules.queue_id,
        "record": rules.record,
        "music_on_hold": rules.music_on_hold,
        "forward_announcement": rules.forward_announcement,
        "voicemail_announcement": rules.voicemail_announcement,
    }


# --- database ----------------------------------------------------------------------------


_CONFIG = (select(RoutingConfig.id, RoutingConfig.enabled, RoutingConfig.rules,
                  RoutingConfig.updated_at)
           .order_by(RoutingConfig.id).limit(1))
# The document last read, parsed: every incoming call asks, the document rarely changes.
_parsed: dict[tuple[int, object], Rules] = {}


def load_rules(session: SessionLike) -> Rules:
    """The rules in force: the stored document, or the defaults when there is none.

    A stored document that no longer validates (edited by hand in the database) is logged
    and replaced by the defaults: calls keep being routed rather than failing. The parsed
    rules are kept until the row's ``updated_at`` changes.
    """
    row = session.connection().execute(_CONFIG).first()
    if row is None or not row.enabled:
        return Rules()
    key = (row.id, row.updated_at)
    if key in _parsed:
        return _parsed[key]
    try:
        rules = rules_from_document(row.rules or {})
    except ValueError as exc:
        log.error("routing_config row %s is invalid (%s); routing with the defaults", row.id, exc)
        return Rules()
    _parsed.clear()
    _parsed[key] = rules
    return rules


def save_rules(session: SessionLike, rules: Rules, user_id: int | None) -> None:
    """Store ``rules`` in the config row (created when missing). The caller commits.

    The UPDATE is the first statement, so called at the start of a transaction it takes
    SQLite's write lock at once (waiting for it if need be) instead of upgrading a read
    lock, which fails when a webhook wrote in between.
    """
    values = {"rules": rules_to_document(rules), "updated_by": user_id, "enabled": True,
              "updated_at": utcnow()}
    # Session.execute is typed for SELECTs; an UPDATE's result is a CursorResult.
    result = cast(CursorResult[Any], session.execute(
        update(RoutingConfig).values(**values).execution_options(synchronize_session=False)
    ))
    if not result.rowcount:
        session.add(RoutingConfig(**values))


_BUSY = (select(Call.agent_id, func.count().label("calls"))
         .where(Call.state.in_(LIVE_STATES), Call.agent_id.is_not(None))
         .group_by(Call.agent_id).subquery("busy"))
# Every agent with the live calls in hand, in one statement (one round trip per routing).
_AGENTS = (select(User.id, User.name, User.presence, User.presence_until, User.sip_peer,
                  User.stringee_user_id, func.coalesce(_BUSY.c.calls, 0).label("active"))
           .outerjoin(_BUSY, _BUSY.c.agent_id == User.id)
           .where(User.role == "agent").order_by(User.id))


def routing_agents(session: SessionLike) -> list[Agent]:
    """Every agent as the policy sees it now: presence, addresses and live calls in hand."""
    return [
        Agent(
            id=user.id,
            name=user.name,
            # set_presence stores only PRESENCES; a timed wrap-up that is over is available
            presence=cast(Presence, effective_presence(user)),
            sip_peer=user.sip_peer,
            stringee_user_id=user.stringee_user_id,
            active_calls=int(user.active),
        )
        for user in session.connection().execute(_AGENTS)
    ]


def decide_for_call(
    session: SessionLike,
    from_number: str | None,
    to_number: str | None,
    reachable_by: Address | None = "sip_peer",
    *,
    portable: bool = True,
) -> Decision:
    """Where a call from ``from_number`` to ``to_number`` goes right now.

    ``reachable_by`` is how the asking provider rings an agent: ``"sip_peer"`` (Placetel,
    mediaservice) or ``"stringee_user_id"`` (Stringee); agents without one are skipped.
    ``portable`` (the default) gives a decision every provider can carry out: a Placetel
    prompt, group or routing plan is replaced by its fallback. Placetel asks with
    ``portable=False``. Reads only; never commits.
    """
    decision = decide(
        from_number, to_number, routing_agents(session), load_rules(session),
        reachable_by=reachable_by,
    )
    return decision.portable() if portable else decision


# --- whom a call is offered to -----------------------------------------------------------

RINGING_STATES = ("ringing", "dialling")


_CALLS = cast(Table, Call.__table__)
_OFFER = (update(_CALLS).where(_CALLS.c.id == bindparam("b_id"))
          .values(offered_to=bindparam("b_offered"), version=_CALLS.c.version + 1))
_OFFER_AND_FACTS = _OFFER.values(provider_facts=bindparam("b_facts"))


def record_offer(session: SessionLike, call_id: int, agent_ids: Collection[int],
                 facts: dict[str, Any] | None = None) -> None:
    """Keep on call ``call_id`` the agents the provider was just told to ring (replacing an
    earlier offer: a provider asking again acts on the newer answer), and mark the call
    changed so boards re-render it. ``facts``, when given, replace the call's
    ``provider_facts`` in the same UPDATE. Writes in the session's transaction; the caller
    commits.
    """
    values: dict[str, Any] = {"b_id": call_id, "b_offered": list(agent_ids)}
    if facts is not None:
        values["b_facts"] = facts
    session.flush()  # a pending ORM change of the call is written first, as an ORM UPDATE would
    session.connection().execute(_OFFER if facts is None else _OFFER_AND_FACTS, values)
    mark_changed(session, CALLS, call_id)


def rings_for(call: Call, agent_id: int) -> bool:
    """Whether ``call`` is ringing ``agent_id`` right now: a call towards the desk that is
    still ringing (or dialling), routed to that agent or offered to them. An agent's own
    outbound call rings the customer, not the agent."""
    if call.state not in RINGING_STATES or call.direction == "outbound":
        return False
    return call.agent_id == agent_id or agent_id in (call.offered_to or ())
