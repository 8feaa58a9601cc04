"""Webhook endpoints that providers call; errors are answered as JSON (see desk.errors)."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

from desk.webhooks import placetel  # noqa: E402,F401  (routes register on import)
