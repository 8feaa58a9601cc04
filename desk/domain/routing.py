"""Routing policy: who an incoming call rings, or where it goes instead. Pure and deterministic.

``decide`` takes the caller and called numbers, a snapshot of the agents and the ``Rules``
and returns one ``Decision``; the provider modules turn it into their answer (Placetel's
Call Control XML in ``desk.providers.placetel.route``, Stringee's SCCO in
``desk.providers.stringee``). Nothing here reads the database or the clock, so the same
inputs always give the same decision and the whole policy is a table of test cases.

The order of checks is the order a supervisor would explain it in: a blocked caller is
refused; a called number with its own target goes there; otherwise every available agent
who is not on a call rings (or the ring groups, one after another); and when nobody can
take the call it goes to voicemail, a queue, a busy signal or a hang-up as the rules say.

Three targets exist only at Placetel (README of ``Placetel/call-control-notify-api``, "Your
XML response"): a *prompt* (play announcement ``id``, then hang up), a *group* (Placetel's
own ring group ``id``) and a *routing plan* (``id``). A decision for one of them carries a
``fallback``: what a provider that cannot send a call there does instead
(``Decision.portable``). A prompt's fallback is a hang-up (the number is meant to reach
nobody); a group's or routing plan's is the routing the number would get without its target
(the available agents, else what the rules say for nobody), which also becomes the
``Forward`` fallback Placetel documents inside ``RoutingPlan``.

Every decision says why in English (``Decision.reason``, what the event log keeps); its
``why`` holds the same words as a catalogue message and its values, so a page (the routing
preview) can show them in its reader's language without the policy reading any locale.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Presence = Literal["available", "away", "wrap-up", "offline"]
Action = Literal[
    "ring", "queue", "voicemail", "reject", "busy", "hangup", "prompt", "group", "routing_plan"
]
Fallback = Literal["voicemail", "queue", "busy", "hangup"]
BlockedAction = Literal["reject", "busy", "hangup"]
Address = Literal["sip_peer", "stringee_user_id"]
BackupBehaviour = Literal["mailbox", "routing_object"]

DEFAULT_RING_TIME = 60  # seconds; also Placetel's default for a Target
ACTIONS: tuple[str, ...] = (
    "ring", "queue", "voicemail", "reject", "busy", "hangup", "prompt", "group", "routing_plan",
)
PLACETEL_ONLY: tuple[str, ...] = ("prompt", "group", "routing_plan")
"""Actions only Placetel can carry out; other providers use the decision's ``fallback``."""
TARGET_LABELS = {"prompt": "Placetel prompt", "group": "Placetel group",
                 "routing_plan": "Placetel routing plan"}
# Placetel's Group: "Ring time before handling backup, 10 to 60 seconds", default 40.
GROUP_RING_TIMES = (10, 60)
DEFAULT_GROUP_RING_TIME = 40
BACKUP_BEHAVIOURS: tuple[BackupBehaviour, ...] = ("mailbox", "routing_object")
FALLBACKS: tuple[Fallback, ...] = ("voicemail", "queue", "busy", "hangup")
BLOCKED_ACTIONS: tuple[BlockedAction, ...] = ("reject", "busy", "hangup")


def N_(text: str) -> str:
    """Marks an English message for the catalogue (``make i18n-extract``) and returns it as
    it is: the policy speaks English, a page translates a ``Why`` when it shows one."""
    return text


@dataclass(frozen=True)
class Why:
    """Why a decision was taken: an English message (a catalogue msgid with ``%(name)s``
    placeholders) and its values, some of them ``Why``s of their own. ``str()`` is the
    English (``Decision.reason``); ``words(gettext)`` the same in a page's language."""

    text: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def words(self, translate: Callable[[str], str] | None = None) -> str:
        shown = {key: value.words(translate) if isinstance(value, Why) else value
                 for key, value in self.values.items()}
        text = translate(self.text) if translate is not None else self.text
        return text % shown if shown else text

    def __str__(self) -> str:
        return self.words()


# Formatting people put into phone numbers; removed before numbers are compared.
_FORMATTING = str.maketrans("", "", " -()/.")


def normalize_number(number: str | None) -> str:
    """The form numbers are compared in: no formatting characters, ``00`` written ``+``.

    Only formatting is removed; ``0221…`` and ``+49221…`` stay different numbers, so rules
    must name a number the way the provider sends it.
    """
    value = (number or "").strip().lower().translate(_FORMATTING)
    if value.startswith("00"):
        value = "+" + value[2:]
    return value


@dataclass(frozen=True)
class Agent:
    """What the policy needs to know about one agent at the moment the call arrives."""

    id: int
    name: str
    presence: Presence
    sip_peer: str | None = None
    stringee_user_id: str | None = None
    active_calls: int = 0

    @property
    def busy(self) -> bool:
        return self.active_calls > 0


@dataclass(frozen=True)
class RingGroup:
    """Agents who ring together, for ``ring_time`` seconds, before the next group rings."""

    agent_ids: tuple[int, ...]
    ring_time: int = DEFAULT_RING_TIME

    def __post_init__(self) -> None:
        if self.ring_time <= 0:
            raise ValueError(f"ring_time must be seconds greater than 0, not {self.ring_time}")


def check_group_options(
    ring_time: int | None, backup_behaviour: str | None, backup_routing_object: str | None
) -> None:
    """Placetel's rules for a Group's options; raises ``ValueError`` naming the option."""
    low, high = GROUP_RING_TIMES
    if ring_time is not None and not low <= ring_time <= high:
        raise ValueError(f"group ring time must be {low} to {high} seconds, not {ring_time}")
    if backup_behaviour is not None and backup_behaviour not in BACKUP_BEHAVIOURS:
        raise ValueError(f"backup_behaviour must be mailbox or routing_object, "
                         f"not {backup_behaviour!r}")
    if backup_behaviour == "routing_object" and not backup_routing_object:
        raise ValueError("backup_behaviour 'routing_object' needs backup_routing_object")


@dataclass(frozen=True, kw_only=True)
class Destination:
    """Where a call goes other than to ringing agents: a queue, or a Placetel prompt, group
    or routing plan, with the group's options (None leaves Placetel's default). Shared by
    a number's target and a decision, which say which of these they use."""

    queue_id: str | None = None
    prompt_id: str | None = None
    group_id: str | None = None
    routing_plan_id: str | None = None
    group_ring_time: int | None = None
    backup_behaviour: BackupBehaviour | None = None
    backup_routing_object: str | None = None


@dataclass(frozen=True)
class NumberTarget(Destination):
    """Where calls to one of our numbers go: some agents, ring groups, a queue, or a Placetel
    prompt, group or routing plan (exactly one of them).

    The group options are Placetel's ``Group`` attributes; None leaves Placetel's default
    (40 s, then the mailbox).
    """

    agent_ids: tuple[int, ...] = ()
    ring_groups: tuple[RingGroup, ...] = ()

    def __post_init__(self) -> None:
        parts = (self.agent_ids, self.ring_groups, self.queue_id, self.prompt_id, self.group_id,
                 self.routing_plan_id)
        if sum(1 for part in parts if part) != 1:
            raise ValueError(
                "a number's target needs exactly one of agent_ids, ring_groups, queue_id, "
                "prompt_id, group_id, routing_plan_id"
            )
        options = (self.group_ring_time, self.backup_behaviour, self.backup_routing_object)
        if not self.group_id and any(option is not None for option in options):
            raise ValueError("group_ring_time and the backup options are for a group_id only")
        check_group_options(*options)

    @property
    def placetel_target(self) -> tuple[Action, str] | None:
        """(action, id) when the target is a Placetel prompt, group or routing plan."""
        if self.prompt_id:
            return "prompt", self.prompt_id
        if self.group_id:
            return "group", self.group_id
        if self.routing_plan_id:
            return "routing_plan", self.routing_plan_id
        return None


@dataclass(frozen=True)
class Rules:
    """The call centre's routing settings. ``Rules()`` is the policy with nothing configured.

    ``targets`` maps a called number to its ``NumberTarget``; ``ring_groups`` apply to every
    other number (without them all available agents ring at once for ``ring_time``).
    ``when_nobody`` says what happens when no agent can take the call; ``queue_id`` is the
    queue it means when that is ``"queue"``. The announcement and music settings are passed
    to providers that have them (Placetel).
    """

    blocked_callers: Collection[str] = frozenset()
    blocked_action: BlockedAction = "reject"
    targets: Mapping[str, NumberTarget] = field(default_factory=dict)
    ring_groups: tuple[RingGroup, ...] = ()
    ring_time: int = DEFAULT_RING_TIME
    when_nobody: Fallback = "voicemail"
    queue_id: str | None = None
    record: bool = False
    music_on_hold: bool | None = None
    forward_announcement: str | None = None
    voicemail_announcement: str | None = None

    def __post_init__(self) -> None:
        if self.ring_time <= 0:
            raise ValueError(f"ring_time must be seconds greater than 0, not {self.ring_time}")
        if self.when_nobody not in FALLBACKS:
            raise ValueError(
                f"when_nobody must be one of {', '.join(FALLBACKS)}, not {self.when_nobody!r}"
            )
        if self.blocked_action not in BLOCKED_ACTIONS:
            raise ValueError(
                f"blocked_action must be one of {', '.join(BLOCKED_ACTIONS)}, "
                f"not {self.blocked_action!r}"
            )
        if self.when_nobody == "queue" and not self.queue_id:
            raise ValueError("when_nobody='queue' needs queue_id")


@dataclass(frozen=True)
class RingStep:
    """One round of ringing: these agents (and external numbers) at once for ``ring_time``.

    ``ring_time`` None leaves it to the provider (60 s at Placetel). ``numbers`` are
    destinations that are not agents, e.g. a mobile phone; the policy does not produce
    them, but the provider answers can carry them.
    """

    agents: tuple[Agent, ...] = ()
    ring_time: int | None = DEFAULT_RING_TIME
    numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision(Destination):
    """What to do with one incoming call.

    ``ring``: ring ``steps`` in order; ``voicemail`` says whether an unanswered call then
    goes to voicemail (None: the provider's default). ``queue``: send to ``queue_id``.
    ``voicemail``, ``reject``, ``busy`` (reject pretending to be busy), ``hangup``: as named.
    ``prompt``, ``group``, ``routing_plan``: Placetel's ``Prompt`` / ``Group`` /
    ``RoutingPlan`` with ``prompt_id`` / ``group_id`` / ``routing_plan_id`` (Placetel only:
    ``fallback`` is what other providers do, see ``portable``).
    The remaining fields are provider options left out of the answer when None.
    ``reason`` says why, in English words for the event log; ``why`` is the same as a
    ``Why`` (``reason`` is made from it when not given), for a page to translate.
    """

    action: Action
    steps: tuple[RingStep, ...] = ()
    record: bool = False
    voicemail: bool | None = None
    voicemail_announcement: str | None = None
    voicemail_as_attachment: bool | None = None
    music_on_hold: bool | None = None
    forward_announcement: str | None = None
    reason: str = ""
    fallback: Decision | None = None
    why: Why | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.why is not None and not self.reason:
            object.__setattr__(self, "reason", str(self.why))
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if self.action == "ring" and not any(s.agents or s.numbers for s in self.steps):
            raise ValueError("a ring decision needs at least one agent or number to ring")
        if self.action == "queue" and not self.queue_id:
            raise ValueError("a queue decision needs queue_id")
        for action in PLACETEL_ONLY:
            if self.action == action and not getattr(self, f"{action}_id"):
                raise ValueError(f"a {action} decision needs {action}_id")
        check_group_options(self.group_ring_time, self.backup_behaviour,
                            self.backup_routing_object)
        if self.fallback is not None and self.fallback.action in PLACETEL_ONLY:
            raise ValueError("a fallback must be something every provider can do")

    @property
    def offered_to(self) -> tuple[int, ...]:
        """The agents a ``ring`` decision rings, each once, in the order they ring: whom the
        call is offered to. Empty for every other action (a Placetel group or routing plan
        picks its own people; a fallback is not what the provider is told)."""
        if self.action != "ring":
            return ()
        return tuple(dict.fromkeys(agent.id for step in self.steps for agent in step.agents))

    @property
    def placetel_only(self) -> bool:
        """Only Placetel can carry this out (a prompt, group or routing plan)."""
        return self.action in PLACETEL_ONLY

    def portable(self) -> Decision:
        """What a provider without Placetel's prompts, groups and routing plans does: the
        ``fallback`` for those (a hang-up when none was given), else this decision."""
        if not self.placetel_only:
            return self
        return self.fallback or Decision("hangup", why=Why(
            N_("%(reason)s; elsewhere: hang up"), {"reason": self.why or self.reason}))


def _can_take(agent: Agent, reachable_by: Address | None) -> bool:
    if agent.presence != "available" or agent.busy:
        return False
    return reachable_by is None or bool(getattr(agent, reachable_by))


_FALLBACK_WHY = {
    "voicemail": N_("%(why)s: voicemail"),
    "queue": N_("%(why)s: queue"),
    "busy": N_("%(why)s: busy"),
    "hangup": N_("%(why)s: hangup"),
}
_PLACETEL_WHY = {
    "prompt": N_("calls to %(number)s go to Placetel prompt %(id)s"),
    "group": N_("calls to %(number)s go to Placetel group %(id)s"),
    "routing_plan": N_("calls to %(number)s go to Placetel routing plan %(id)s"),
}


def _fallback(rules: Rules, why: Why) -> Decision:
    said = Why(_FALLBACK_WHY[rules.when_nobody], {"why": why})
    if rules.when_nobody == "voicemail":
        return Decision(
            "voicemail",
            voicemail=True,
            voicemail_announcement=rules.voicemail_announcement,
            record=rules.record,
            why=said,
        )
    if rules.when_nobody == "queue":
        return Decision("queue", queue_id=rules.queue_id, record=rules.record, why=said)
    return Decision(rules.when_nobody, why=said)


def decide(
    from_number: str | None,
    to_number: str | None,
    agents: Sequence[Agent],
    rules: Rules | None = None,
    *,
    reachable_by: Address | None = None,
) -> Decision:
    """Decide what happens to a call from ``from_number`` to ``to_number``.

    ``reachable_by`` names the address a provider rings agents at (``"sip_peer"`` for
    Placetel, ``"stringee_user_id"`` for Stringee); agents without one are skipped as if
    they were away, so "nobody reachable" falls back like "nobody available".
    """
    rules = rules or Rules()
    caller = normalize_number(from_number)
    if caller and caller in {normalize_number(n) for n in rules.blocked_callers}:
        return Decision(rules.blocked_action,
                        why=Why(N_("caller %(caller)s is blocked"), {"caller": from_number}))

    called = normalize_number(to_number)
    targets = {normalize_number(number): target for number, target in rules.targets.items()}
    target = targets.get(called) if called else None
    if target is not None and target.queue_id:
        return Decision(
            "queue",
            queue_id=target.queue_id,
            record=rules.record,
            why=Why(N_("calls to %(number)s go to queue %(queue)s"),
                    {"number": to_number, "queue": target.queue_id}),
        )

    by_id = {agent.id: agent for agent in agents}
    if target is not None and target.placetel_target:
        return _placetel_target(target, to_number, by_id, rules, reachable_by)
    if target is not None and target.agent_ids:
        groups: tuple[RingGroup, ...] = (RingGroup(target.agent_ids, rules.ring_time),)
    elif target is not None:
        groups = target.ring_groups
    else:
        groups = _usual_groups(by_id, rules)
    return _ring(groups, to_number, by_id, rules, reachable_by)


def _usual_groups(by_id: Mapping[int, Agent], rules: Rules) -> tuple[RingGroup, ...]:
    """Who rings for a number without a target of its own."""
    if rules.ring_groups:
        return rules.ring_groups
    everyone = tuple(sorted(by_id))
    return (RingGroup(everyone, rules.ring_time),) if everyone else ()


def _placetel_target(
    target: NumberTarget, to_number: str | None, by_id: Mapping[int, Agent], rules: Rules,
    reachable_by: Address | None,
) -> Decision:
    action, ident = target.placetel_target or ("hangup", "")  # the caller checked it is set
    where = Why(_PLACETEL_WHY[action], {"number": to_number, "id": ident})
    if action == "prompt":
        fallback = Decision("hangup", why=Why(
            N_("%(where)s, which only Placetel can play: hang up"), {"where": where}))
    else:
        usual = _ring(_usual_groups(by_id, rules), to_number, by_id, rules, reachable_by)
        fallback = replace(usual, reason="", why=Why(
            N_("%(where)s, which only Placetel can reach; instead %(usual)s"),
            {"where": where, "usual": usual.why or usual.reason}))
    group = action == "group"
    return Decision(
        action,
        record=rules.record,
        why=where,
        prompt_id=ident if action == "prompt" else None,
        group_id=ident if group else None,
        routing_plan_id=ident if action == "routing_plan" else None,
        # Placetel's Group takes the same announcement and music options as a Forward.
        music_on_hold=rules.music_on_hold if group else None,
        forward_announcement=rules.forward_announcement if group else None,
        voicemail_announcement=rules.voicemail_announcement if group else None,
        group_ring_time=target.group_ring_time,
        backup_behaviour=target.backup_behaviour,
        backup_routing_object=target.backup_routing_object,
        fallback=fallback,
    )


def _ring(
    groups: tuple[RingGroup, ...], to_number: str | None, by_id: Mapping[int, Agent],
    rules: Rules, reachable_by: Address | None,
) -> Decision:
    """Ring whoever of ``groups`` can take the call, one group after another, or fall back."""
    steps = []
    for group in groups:
        ready = tuple(
            by_id[i] for i in group.agent_ids if i in by_id and _can_take(by_id[i], reachable_by)
        )
        if ready:
            steps.append(RingStep(ready, group.ring_time))
    if not steps:
        return _fallback(rules, Why(N_("no agent can take calls to %(number)s"),
                                    {"number": to_number}) if to_number
                         else Why(N_("no agent can take calls to this number")))

    # An unanswered forward can only end in voicemail or nothing: a queue or busy fallback
    # applies when nobody was free, not when free agents let it ring.
    to_voicemail = rules.when_nobody == "voicemail"
    count = sum(len(step.agents) for step in steps)
    return Decision(
        "ring",
        steps=tuple(steps),
        record=rules.record,
        voicemail=to_voicemail,
        voicemail_announcement=rules.voicemail_announcement if to_voicemail else None,
        music_on_hold=rules.music_on_hold,
        forward_announcement=rules.forward_announcement,
        why=Why(N_("ringing %(count)s agent(s) in %(steps)s step(s)"),
                {"count": count, "steps": len(steps)}),
    )
