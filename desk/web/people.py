"""How a page names the person on a call: the desk user who answered it, or the provider's
name for whoever did, said not to be a desk user.

A call's ``agent`` is set when a webhook's answering party (SIP peer, Stringee user id,
extension) matches a desk user (``desk.services.ingest.find_agent``). A party that matched
nobody then, a Stringee app user such as ``hotline-2`` say, stays as the provider named it
in ``answered_by``; such a call is matched again when it is shown, so a desk user given
that id later is shown by name on the calls they took before. Otherwise the row says the
party is not a desk user, rather than showing an id that reads like a person. Lookups are
kept for the render (one request, or one live batch): a board of rows asks once per name.
"""

from __future__ import annotations

from flask import g
from flask_babel import gettext
from sqlalchemy.orm import object_session

from desk.extensions import db
from desk.models import Call, User
from desk.services.ingest import find_agent
from desk.web import bp


def desk_user_for(call: Call) -> User | None:
    """The desk user who answered ``call``: its agent, or the user its ``answered_by`` names."""
    if call.agent is not None:
        return call.agent
    if not call.answered_by:
        return None
    known: dict[str, User | None] = g.setdefault("desk_users_by_party", {})
    if call.answered_by not in known:
        session = object_session(call) or db.session()
        known[call.answered_by] = find_agent(session, call.answered_by)
    return known[call.answered_by]


@bp.app_template_global("answered_by_label")
def answered_by_label(call: Call) -> str:
    """Who answered ``call``, for a row: a desk user's name, else the provider's name for the
    party followed by "(not a desk user)"; "" when nobody did."""
    user = desk_user_for(call)
    if user is not None:
        return user.name
    if not call.answered_by:
        return ""
    return gettext("%(party)s (not a desk user)", party=call.answered_by)
