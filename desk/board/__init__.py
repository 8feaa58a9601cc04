"""Pages for people: login, the agent board, the supervisor board, presence."""

from flask import Blueprint

bp = Blueprint("board", __name__)

from desk.board import calls, dial, routing, views  # noqa: E402,F401  (routes register on import)
