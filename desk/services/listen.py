"""Supervisors listening in: the standing rules, starting and stopping them, and which rule
a call follows.

A rule (``desk.models.ListenIn``) says "ring my SIP address as a silent leg on the calls
agent X takes" or "... on the calls to number Y". The provider carries it out when it asks
the desk where a call goes: the iotcomms mediaservice's ``newCall`` / ``callEvent`` answers
take ``monitorDestAddr`` (and ``monitorSipFrom``) for that (see
``desk.providers.mediaservice.answers.with_monitor``). A rule therefore applies from the next
call it matches on; a call already connected is not joined. Only supervisors start and stop
rules, any supervisor may stop any rule (one left running by a colleague who went home),
and both are written to the audit log, as are refused attempts (outcome ``invalid``).

When several rules match a call, the agent's own rules win over number rules, the oldest
first: a routing answer names one monitoring address.

Numbers are compared without spaces, dashes, dots, slashes, brackets and a leading ``+``
(``+27 82 000-1234`` and ``27820001234`` are the same number; ``0027…`` is not).

A refusal says what to fix in the asker's language (``ListenRefused.message``; the API's is
English) and goes to the audit log in English (``ListenRefused.english``).
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from desk.db import end_reads
from desk.models import ListenIn, User
from desk.services import audit

_SEPARATORS = re.compile(r"[\s\-./()]")
_NUMBER = re.compile(r"^[0-9*#]{2,32}$")
_SIP_URI = re.compile(r"^sips?:[A-Za-z0-9+._~*#!$&'=%-]{1,64}@[A-Za-z0-9.-]{1,190}(:\d{1,5})?$")

AnySession = Session | scoped_session[Session]


def N_(text: str) -> str:
    """Marks a message for the catalogue; ``ListenRefused`` translates it."""
    return text


class ListenRefused(Exception):
    """A listen-in cannot be started or stopped; ``status`` is the HTTP status, ``field``
    the form field the message is about (None: the request as a whole).

    ``text`` is an English catalogue message with ``%(name)s`` placeholders for ``values``:
    ``message`` is it in the request's language, ``english`` as the audit log keeps it."""

    def __init__(self, text: str, status: int = 400, field: str | None = None,
                 **values: Any) -> None:
        self.english = text % values if values else text
        super().__init__(self.english)
        self.message: str = gettext(text, **values)
        self.status, self.field = status, field


def normalise_number(value: str | None) -> str | None:
    """``+27 82 000-1234`` → ``27820001234``; None when it is not a number."""
    text = _SEPARATORS.sub("", (value or "").strip()).removeprefix("+")
    return text if _NUMBER.match(text) else None


def sip_address(value: str) -> str:
    """``sue@pbx.example`` → ``sip:sue@pbx.example``; ``ValueError`` unless it is a SIP
    address with a user and a host."""
    text = (value or "").strip()
    if text and not text.lower().startswith(("sip:", "sips:")):
        text = f"sip:{text}"
    if not _SIP_URI.match(text):
        raise ValueError(f"not a SIP address like sip:sue@pbx.example: {value[:80]!r}")
    return text


def _user_part(address: str) -> str:
    text = address.strip().lower().removeprefix("sips:").removeprefix("sip:")
    return text.split(";", 1)[0].split("@", 1)[0]


def describe(rule: ListenIn) -> str:
    """What a rule listens to, in words: ``ann's calls``, ``calls to 0221``."""
    if rule.agent is not None:
        return gettext("%(agent)s's calls", agent=rule.agent.name)
    return gettext("calls to %(number)s", number=rule.number)


def to_json(rule: ListenIn) -> dict[str, Any]:
    return {
        "id": rule.id,
        "supervisor": rule.supervisor.name,
        "agent": rule.agent.name if rule.agent else None,
        "number": rule.number,
        "address": rule.address,
        "created_at": rule.created_at.isoformat(),
    }


def rules(session: AnySession) -> list[ListenIn]:
    """Every rule standing, oldest first."""
    return list(session.scalars(select(ListenIn).order_by(ListenIn.id)).unique())


def for_call(session: AnySession, agent_id: int | None, to_number: str | None) -> ListenIn | None:
    """The rule a call to ``to_number``, going to agent ``agent_id``, follows (if any)."""
    if agent_id is not None:
        rule = session.scalars(select(ListenIn).where(ListenIn.agent_id == agent_id)
                               .order_by(ListenIn.id).limit(1)).first()
        if rule is not None:
            return rule
    number = normalise_number(to_number)
    if number is None:
        return None
    return session.scalars(select(ListenIn).where(ListenIn.number == number)
                           .order_by(ListenIn.id).limit(1)).first()


def listener(session: Session, remote_user: str | None, agent_id: int | None,
             to_number: str | None) -> str:
    """Who answered a monitoring leg, for the board: the supervisor whose rule rings that
    SIP user (``remote_user``, the leg's called party), else the user with that SIP peer,
    else the supervisor of the rule the call follows."""
    from desk.services.ingest import find_agent

    wanted = _user_part(remote_user or "")
    if wanted:
        for rule in rules(session):
            if _user_part(rule.address) == wanted:
                return rule.supervisor.name
        person = find_agent(session, remote_user)
        if person is not None:
            return person.name
    matched = for_call(session, agent_id, to_number)
    return matched.supervisor.name if matched is not None else "a supervisor"


def _refuse(session: Session, user: User, action: str, problem: ListenRefused,
            detail: dict[str, Any]) -> ListenRefused:
    """``problem``, written to the audit log as an invalid attempt first."""
    session.rollback()
    audit.record(session, user_id=user.id, action=action, outcome="invalid",
                 detail={**detail, "reason": problem.english})
    session.commit()
    return problem


def _agent(session: Session, agent_id: Any, agent_name: Any) -> User | None:
    if agent_id not in (None, ""):
        try:
            wanted = int(str(agent_id).strip())
        except ValueError:
            raise ListenRefused(N_("'agent_id' must be a user id, not %(value)s."),
                                field="agent", value=repr(str(agent_id)[:40])) from None
        person = session.get(User, wanted)
        if person is None:
            raise ListenRefused(N_("There is no user %(id)s."), status=404, field="agent",
                                id=wanted)
        return person
    if agent_name not in (None, ""):
        if not isinstance(agent_name, str):
            raise ListenRefused(N_("'agent' must be a user's name."), field="agent")
        person = session.scalars(select(User).where(
            func.lower(User.name) == agent_name.strip().lower())).first()
        if person is None:
            raise ListenRefused(N_("There is no user named %(name)s."), status=404,
                                field="agent", name=repr(agent_name.strip()[:80]))
        return person
    return None


def start(
    session: Session, user: User, *, agent_id: Any = None, agent_name: Any = None,
    number: Any = None, address: Any = None,
) -> ListenIn:
    """Start listening to one agent's calls or to the calls to one number, at ``address``
    (default: ``user``'s own SIP peer). Raises ``ListenRefused`` saying what to fix."""
    if not user.is_supervisor:
        raise ListenRefused(N_("Only supervisors can listen in on calls."), status=403)
    detail: dict[str, Any] = {"agent_id": agent_id, "agent": agent_name, "number": number,
                              "address": address}
    detail = {key: value for key, value in detail.items() if value not in (None, "")}
    end_reads(session)
    try:
        agent = _agent(session, agent_id, agent_name)
        if number is not None and not isinstance(number, str):
            raise ListenRefused(N_("'number' must be text, such as 0221 or +27 82 000 1234."),
                                field="number")
        given_number = (number or "").strip()
        if agent is None and not given_number:
            raise ListenRefused(N_("Say whose calls to listen to: pick an agent, or give a "
                                   "number."), field="agent")
        if agent is not None and given_number:
            raise ListenRefused(N_("Pick an agent or give a number, not both: each listen-in "
                                   "is one or the other."), field="number")
        if agent is not None and agent.id == user.id:
            raise ListenRefused(N_("You cannot listen in on your own calls."), field="agent")
        wanted = normalise_number(given_number) if given_number else None
        if given_number and wanted is None:
            raise ListenRefused(N_("%(value)s is not a phone number (digits, optionally with "
                                   "+, spaces or dashes)."), field="number",
                                value=repr(given_number[:40]))
        if address is not None and not isinstance(address, str):
            raise ListenRefused(N_("'address' must be text: a SIP address."), field="address")
        typed = (address or "").strip() or (user.sip_peer or "")
        if not typed:
            raise ListenRefused(N_("Give the SIP address your phone answers at "
                                   "(sip:you@pbx.example): you have no SIP peer set."),
                                field="address")
        try:
            where = sip_address(typed)
        except ValueError:
            raise ListenRefused(N_("%(value)s is not a SIP address; it looks like "
                                   "sip:you@pbx.example."), field="address",
                                value=repr(typed[:80])) from None
        # Named before the flush: a failed one leaves the session unable to load anything.
        whose = agent.name if agent is not None else None
        rule = ListenIn(supervisor_id=user.id, agent_id=agent.id if agent else None,
                        number=wanted, address=where)
        session.add(rule)
        try:
            session.flush()
        except IntegrityError:
            if whose is not None:
                raise ListenRefused(N_("You are listening to %(agent)s's calls already; stop "
                                       "that first to change the address."), status=409,
                                    agent=whose) from None
            raise ListenRefused(N_("You are listening to the calls to %(number)s already; "
                                   "stop that first to change the address."), status=409,
                                number=wanted) from None
    except ListenRefused as problem:
        raise _refuse(session, user, "listen-start", problem, detail) from None
    audit.record(session, user_id=user.id, action="listen-start", outcome="ok",
                 detail={"listen_in": rule.id, "agent": agent.name if agent else None,
                         "number": wanted, "address": where})
    session.commit()
    session.refresh(rule)
    return rule


def find_own(session: Session, user: User, *, agent_id: Any = None, agent_name: Any = None,
             number: Any = None) -> int:
    """The id of ``user``'s own rule for that agent or number (``ListenRefused`` 404)."""
    end_reads(session)
    agent = _agent(session, agent_id, agent_name)
    query = select(ListenIn.id).where(ListenIn.supervisor_id == user.id)
    if agent is not None:
        query = query.where(ListenIn.agent_id == agent.id)
    elif isinstance(number, str) and normalise_number(number):
        query = query.where(ListenIn.number == normalise_number(number))
    else:
        raise ListenRefused(N_("Say which listen-in to stop: its id, an agent or a number."))
    found = session.scalar(query)
    if found is None:
        raise ListenRefused(N_("You are not listening to those calls."), status=404)
    return found


def stop(session: Session, user: User, rule_id: int) -> dict[str, Any]:
    """Stop listen-in ``rule_id``; what it was, as ``to_json`` shows it."""
    if not user.is_supervisor:
        raise ListenRefused(N_("Only supervisors can stop a listen-in."), status=403)
    end_reads(session)
    rule = session.get(ListenIn, rule_id)
    if rule is None:
        raise _refuse(session, user, "listen-stop",
                      ListenRefused(N_("There is no listen-in %(id)s; it may have been "
                                       "stopped already."), status=404, id=rule_id),
                      {"listen_in": rule_id})
    was = to_json(rule)
    session.delete(rule)
    audit.record(session, user_id=user.id, action="listen-stop", outcome="ok",
                 detail={"listen_in": rule_id, "of": was["supervisor"], "agent": was["agent"],
                         "number": was["number"], "address": was["address"]})
    session.commit()
    return was
