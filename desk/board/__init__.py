"""Pages for people: login, the agent board, the supervisor board, presence."""

from flask import Blueprint

bp = Blueprint("board", __name__)

from desk.board import (  # noqa: E402,F401  (routes register on import)
    calls,
    dial,
    history,
    routing,
    views,
    wallboard,
)
