"""Process-wide singletons: the database, websockets, CSRF, login, login throttling, htmx
and the live hub.

Created here without an app and bound in ``desk.create_app`` (the application-factory
pattern), so every module imports the same objects and tests can build many apps. Also
``current_app_object``, the app itself behind Flask's ``current_app`` proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
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
# Counts failed logins (``desk.web.auth``); no limit applies to any other route. The moving
# window has no boundary an attacker could straddle to double the attempts. Its storage
# (Redis or in-process) is chosen per app in ``desk.register_extensions``; when Redis stops
# answering, counting goes on in-process (logged) rather than failing the login.
limiter = Limiter(get_remote_address, strategy="moving-window", in_memory_fallback_enabled=True,
                  swallow_errors=True)
htmx = Htmx()
hub = Hub()


def current_app_object() -> Flask:
    """The application behind ``current_app``, for work that outlives the app context
    (threads, listeners, clients kept per app) and so must not hold the proxy."""
    # Flask types the proxy as the app itself, which hides the proxy's own method.
    proxy = cast("LocalProxy[Flask]", current_app)
    return proxy._get_current_object()
