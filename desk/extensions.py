"""Process-wide singletons: the database, websockets, CSRF, login, htmx and the live hub.

Created here without an app and bound in ``desk.create_app`` (the application-factory
pattern), so every module imports the same objects and tests can build many apps. Also
``current_app_object``, the app itself behind Flask's ``current_app`` proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app
from flask_login import LoginManager
from flask_sock import Sock
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from desk.db import Database
from desk.live.hub import Hub

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

db = Database()
sock = Sock()
csrf = CSRFProtect()
login_manager = LoginManager()
htmx = Htmx()
hub = Hub()


def current_app_object() -> Flask:
    """The application behind ``current_app``, for work that outlives the app context
    (threads, listeners, clients kept per app) and so must not hold the proxy."""
    # Flask types the proxy as the app itself, which hides the proxy's own method.
    proxy = cast("LocalProxy[Flask]", current_app)
    return proxy._get_current_object()
