"""What boards are sent: one rendering per audience for a change, a full snapshot on connect.

A call row is the same ``_call_row.html`` the page renders; in a push it carries
``hx-swap-oob`` and ``data-section`` (where it belongs), and ``static/board/desk.js`` moves it
there when the section changed or the row is new. See ``desk.live.hub`` for audiences.
Every board, its snapshot and its pushes show what ``desk.services.visibility`` lets its
viewer see, and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Set
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, render_template

from desk.extensions import db, hub
from desk.i18n import speaking
from desk.live.changes import AGENTS, ALERTS, CALLS, Changes
from desk.live.hub import Audiences, Fragments
from desk.models import Call, User
from desk.services import queries, wallboard
from desk.services.routing_store import rings_for
from desk.services.visibility import shared_with_agents


def agent_section(call: Call, viewer_id: int | None) -> str:
    if not call.is_live:
        return "calls-ended"
    return "calls-mine" if viewer_id is not None and call.agent_id == viewer_id else "calls-queue"


def supervisor_section(call: Call) -> str:
    return "calls-live" if call.is_live else "calls-ended"


_batch: ContextVar[dict[str, Any] | None] = ContextVar("desk_render_batch", default=None)
"""The template context every fragment of a batch shares (``_voice``)."""


@contextmanager
def _voice(voice: str) -> Iterator[None]:
    """Render a batch's fragments in ``voice``. Flask's ``render_template`` runs every
    context processor again for each template; a batch renders hundreds of fragments in
    one context that does not change, so they run once here (``_render``)."""
    with speaking(voice):
        shared: dict[str, Any] = {}
        current_app.update_template_context(shared)
        token = _batch.set(shared)
        try:
            yield
        finally:
            _batch.reset(token)


def _render(name: str, **context: Any) -> str:
    shared = _batch.get()
    if shared is None:  # an htmx answer or a page: Flask's way
        return render_template(name, **context)
    return current_app.jinja_env.get_template(name).render({**shared, **context})


def _row(call: Call, section: str, own: bool = False, may_act: bool = False,
         oob: bool = True, for_you: bool = False) -> str:
    return _render("board/_call_row.html", call=call, section=section, own=own,
                   may_act=may_act, oob=oob, for_you=for_you)


def _removed(call: Call) -> str:
    """Takes the call's row off a board that may no longer show it (htmx deletes the
    element with this id; a board that never had the row ignores it)."""
    return f'<article id="call-{call.id}" hx-swap-oob="delete"></article>'


def call_fragments(
    call: Call, roles: Set[str] = frozenset({"agent", "supervisor"})
) -> Fragments:
    """The renderings of one call: for supervisors, its agent, and every other agent.

    Supervisors may act on any call, an agent on its own; nobody else sees buttons. The
    other agents get the row only while ``shared_with_agents`` allows it: when another
    agent's call ends, its row leaves their boards instead of moving to *Recently ended*.
    An agent the call rings (``rings_for``: routed or offered to them) gets it marked
    *ringing for you*: after the others' copy, so on their board the marked one wins.
    Only the ``roles`` that have boards open are rendered for.
    """
    fragments: Fragments = []
    if "supervisor" in roles:
        fragments.append(("supervisor", _row(call, supervisor_section(call), may_act=True)))
    if "agent" not in roles:
        return fragments
    others = "agents"
    if call.agent_id is not None:
        fragments.append((f"agent:{call.agent_id}",
                          _row(call, agent_section(call, call.agent_id), own=True, may_act=True,
                               for_you=rings_for(call, call.agent_id))))
        others = f"others:{call.agent_id}"
    shared = shared_with_agents(call)
    fragments.append((others, _row(call, agent_section(call, None)) if shared else _removed(call)))
    for agent_id in dict.fromkeys(call.offered_to or ()):
        if agent_id != call.agent_id and rings_for(call, agent_id):  # live: shared with all
            fragments.append((f"agent:{agent_id}",
                              _row(call, agent_section(call, agent_id), for_you=True)))
    return fragments


def row_for(user: User, call: Call) -> str:
    """The row as ``user`` sees it, for an htmx answer (no out-of-band swap)."""
    if user.is_supervisor:
        return _row(call, supervisor_section(call), may_act=True, oob=False)
    own = call.agent_id == user.id
    return _row(call, agent_section(call, user.id), own=own, may_act=own, oob=False)


def on_call(current: dict[int, Call], agent_id: int) -> Call | None:
    """The call ``agent_id`` is talking on, if any: presence then reads *on a call*."""
    call = current.get(agent_id)
    return call if call is not None and call.state == "talking" else None


def render_changes(app: Flask, changes: Changes, roles: Set[str], voice: str = "") -> Fragments:
    """The fragments of ``changes`` for boards of ``roles`` that read in ``voice``."""
    return render_voices(app, changes, {voice: set(roles)})[voice]


def render_voices(app: Flask, changes: Changes, audiences: Audiences) -> dict[str, Fragments]:
    """Called by the hub's dispatcher thread for each (merged) batch of committed changes.

    What changed is read once; it is rendered once per voice (``desk.i18n.speaking``),
    only for the roles with boards of that voice in this process: a process holding no
    supervisor board never computes the wallboard. A bare request context (no real
    request) lets fragments use ``url_for`` like the page.
    """
    everyone = set().union(*audiences.values()) if audiences else set()
    with app.test_request_context(), db.new_session() as session:
        call_ids = changes.get(CALLS, set())
        calls = list(queries.calls_by_id(session, call_ids))
        agent_ids = changes.get(AGENTS, set())
        current = queries.current_calls(session, agent_ids) if agent_ids else {}
        people = list(queries.people(session, agent_ids)) if agent_ids else []
        alerts = (queries.open_alerts(session)
                  if ALERTS in changes and "supervisor" in everyone else None)
        counts = queries.state_counts(session) if call_ids else None
        wb = None
        if call_ids and "supervisor" in everyone:
            throttle = _throttle(app)
            if time.monotonic() - throttle.at >= WALLBOARD_EVERY:
                wb = _compute_wallboard(app, session, throttle)
            else:
                throttle.due = True  # the hub's next tick renders it (``render_tick``)
        rendered: dict[str, Fragments] = {}
        for voice, roles in audiences.items():
            with _voice(voice):
                rendered[voice] = _fragments(roles, calls, people, current, alerts, counts, wb)
        return rendered


def _fragments(roles: Set[str], calls: list[Call], people: list[User],
               current: dict[int, Call], alerts: Any, counts: Any, wb: Any) -> Fragments:
    supervisors, agents = "supervisor" in roles, "agent" in roles
    fragments: Fragments = []
    for call in calls:
        fragments.extend(call_fragments(call, roles))
    for person in people:
        if supervisors:
            fragments.append(("supervisor", _render(
                "board/_agent_tile.html", person=person, call=current.get(person.id), oob=True)))
        if agents:
            fragments.append((f"agent:{person.id}", _render(
                "shared/_presence.html", me=person, on_call=on_call(current, person.id),
                oob=True)))
    if alerts is not None and supervisors:
        fragments.append(("supervisor", _render(
            "supervisor/_alerts.html", alerts=alerts, oob=True)))
    if counts is not None:
        counters = _render("shared/_counters.html", counts=counts, oob=True)
        fragments.append(("supervisor", counters))
        fragments.append(("agents", counters))
    if wb is not None and supervisors:
        fragments.append(_wallboard(wb))
    return fragments


WALLBOARD_EVERY = 1.0
"""Seconds between two computations of today's wallboard counters in a process. They scan
the day's calls, which costs more than all a batch's rows together under load; the rows
stay immediate, the counters follow within this time (a trailing tick, never dropped)."""


@dataclass
class _Throttle:
    at: float = float("-inf")  # time.monotonic() of the last computation
    due: bool = False  # calls changed since: the next tick computes them


def _throttle(app: Flask) -> _Throttle:
    throttle: _Throttle = app.extensions.setdefault("desk_wallboard_throttle", _Throttle())
    return throttle


def _compute_wallboard(app: Flask, session: Any, throttle: _Throttle) -> Any:
    wb = wallboard.compute(session, app.config["DESK_TIMEZONE"])
    throttle.at, throttle.due = time.monotonic(), False
    return wb


def _wallboard(wb: Any) -> tuple[str, str]:
    return ("supervisor", _render("supervisor/_wallboard_counters.html", wb=wb, oob=True))


def render_tick(app: Flask, audiences: Audiences) -> dict[str, Fragments]:
    """Called by the hub's dispatcher when it wakes: the wallboard counters a batch left
    for later (``WALLBOARD_EVERY``), once their time has come; nothing otherwise."""
    throttle = _throttle(app)
    voices = [voice for voice, roles in audiences.items() if "supervisor" in roles]
    if not throttle.due or not voices or time.monotonic() - throttle.at < WALLBOARD_EVERY:
        return {}
    with app.test_request_context(), db.new_session() as session:
        wb = _compute_wallboard(app, session, throttle)
        rendered: dict[str, Fragments] = {}
        for voice in voices:
            with _voice(voice):
                rendered[voice] = [_wallboard(wb)]
        return rendered


def render_status(app: Flask, voices: Set[str]) -> dict[str, Fragments]:
    with app.test_request_context():
        rendered: dict[str, Fragments] = {}
        for voice in voices:
            with speaking(voice):
                rendered[voice] = [("supervisor", render_template(
                    "shared/_status.html", hub=hub, oob=True))]
        return rendered


def board_context(session: Any, user: User) -> dict[str, Any]:
    """Everything a board page (and its websocket snapshot) shows for ``user``."""
    limit = current_app.config["DESK_ENDED_CALLS_SHOWN"]
    live = queries.live_calls(session)
    context: dict[str, Any] = {
        "me": user,
        "ended": queries.recent_ended(session, limit, user),
        "counts": queries.state_counts(session),
        "ended_shown": limit,
        "hub": hub,
    }
    if user.is_supervisor:
        context["live"] = live
        context["agents"] = queries.people(session)
        context["current"] = queries.current_calls(session)
        context["alerts"] = queries.open_alerts(session)
        context["wb"] = wallboard.compute(session, current_app.config["DESK_TIMEZONE"])
    else:
        # The calls ringing this agent, which their rows mark (``_call_row.html``).
        context["for_me"] = {c.id for c in live if rings_for(c, user.id)}
        context["mine"] = [c for c in live if c.agent_id == user.id]
        context["on_call"] = next((c for c in context["mine"] if c.state == "talking"), None)
        context["queue"] = [c for c in live if c.agent_id != user.id]
    return context


def render_snapshot(session: Any, user: User) -> str:
    """Every section of ``user``'s board as out-of-band swaps: sent first on each connect."""
    return render_template("board/_snapshot.html", oob=True, **board_context(session, user))
