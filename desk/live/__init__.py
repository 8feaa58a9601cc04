"""The live surface: the ``/ws`` websocket and the rendering of what it sends."""

from flask import Blueprint

bp = Blueprint("live", __name__)

from desk.live import views  # noqa: E402,F401  (routes register on import)
