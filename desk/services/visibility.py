"""Who may look at which calls: the role rule, written once, as SQL and as a check.

Supervisors see every call. Agents share the queue, so they see every *live* call, and of
the ended ones their own (``Call.agent_id`` is the agent who answered) and the queue's: the
calls no agent took (missed, voicemail, abandoned), which every agent saw ring. Another
agent's ended call (its numbers, outcome and talk time) is that agent's business. Two
scopes:

* ``visible_calls`` / ``can_see``: what a user may look at, everywhere: a board's sections
  and its live pushes (``desk.live.render``), a call's detail page, the JSON API's list and
  single call, the call a refused dial names (``desk.services.dial``), and so the CRM's
  messages, which are read off the board's rows.
* ``history_scope``: the history page and its CSV export, which are a person's record of
  their calls. Own calls only: someone else's live call is on the board, not in one's
  history.

Acting on a call is a different, stricter rule (own calls only) that lives with the actions
(``desk.services.actions``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask_babel import gettext
from sqlalchemy import Select, or_
from sqlalchemy.orm import Session, scoped_session

from desk.models import LIVE_STATES, Call, User

Q = TypeVar("Q", bound=Select[Any])


def shared_with_agents(call: Call) -> bool:
    """Whether every agent may see ``call``: live, or no agent's (the boards' audience
    "agents"; otherwise only its own agent and the supervisors)."""
    return call.is_live or call.agent_id is None


def can_see(user: User, call: Call) -> bool:
    """Whether ``user`` may look at ``call``: the check of ``visible_calls`` for one row."""
    return user.is_supervisor or shared_with_agents(call) or call.agent_id == user.id


class CallNotFound(LookupError):
    """There is no such call (answered 404 by ``desk.errors``)."""


class NotVisible(PermissionError):
    """The user may not look at this call (answered 403 by ``desk.errors``)."""


def load_visible(session: Session | scoped_session[Session], user: User, call_id: int) -> Call:
    """The call ``call_id`` if ``user`` may look at it; ``CallNotFound`` / ``NotVisible``,
    said in the reader's language (English under ``/api/``: ``desk.i18n``)."""
    call = session.get(Call, call_id)
    if call is None:
        raise CallNotFound(gettext("There is no call %(id)s.", id=call_id))
    if not can_see(user, call):
        raise NotVisible(gettext("This call was another agent's; agents see live calls, "
                                 "their own and the unanswered ones."))
    return call


def visible_calls(user: User, query: Q) -> Q:
    """``query`` (over ``Call``) narrowed to the calls ``can_see`` allows ``user``."""
    if user.is_supervisor:
        return query
    return query.where(or_(Call.agent_id == user.id, Call.agent_id.is_(None),
                           Call.state.in_(LIVE_STATES)))


def history_scope(user: User, query: Q) -> Q:
    """``query`` (over ``Call``) narrowed to ``user``'s history: all for supervisors, an
    agent's own calls otherwise."""
    if user.is_supervisor:
        return query
    return query.where(Call.agent_id == user.id)
