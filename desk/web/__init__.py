"""Pages for people: login, the agent board, the supervisor board, presence."""

from flask import Blueprint

bp = Blueprint("board", __name__)

from desk.web import (  # noqa: E402,F401  (routes register on import)
    board,
    calls,
    dial,
    history,
    people,
    preferences,
    wrapup,
)
from desk.web.supervisor import listen, routing, wallboard  # noqa: E402,F401
