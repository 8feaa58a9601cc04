"""Process-wide singletons: the database, websockets, CSRF, login, htmx and the live hub.

Created here without an app and bound in ``desk.create_app`` (the application-factory
pattern), so every module imports the same objects and tests can build many apps.
"""

from __future__ import annotations

from flask_login import LoginManager
from flask_sock import Sock
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from desk.db import Database
from desk.live.hub import Hub

db = Database()
sock = Sock()
csrf = CSRFProtect()
login_manager = LoginManager()
htmx = Htmx()
hub = Hub()
