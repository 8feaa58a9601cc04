"""Agent Desk: live calls from telephony providers on every agent's and supervisor's board.

``create_app`` is the application factory; it runs its named steps in order. Everything a
step binds lives in ``desk.extensions``. Read ``README.md`` for the picture of the data flow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.typing import ResponseReturnValue

from desk import _resources
from desk.settings import load_settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the desk. ``config`` overrides the environment (tests pass a mapping)."""
    app = Flask(
        __name__,
        static_folder=str(_resources.STATIC),
        template_folder=str(_resources.TEMPLATES),
        instance_path=str(_resources.INSTANCE) if _resources.INSTANCE else None,
    )
    app.config.update(load_settings(config, instance_path=app.instance_path))
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_live(app)
    register_cli(app)
    register_security(app)  # before register_embedding: see desk.web.security
    register_embedding(app)
    register_metrics(app)
    register_background(app)
    return app


def configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config["DESK_LOG_LEVEL"]).upper(), logging.INFO)
    logging.getLogger("desk").setLevel(level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def register_extensions(app: Flask) -> None:
    from flask_babel import gettext

    from desk.extensions import csrf, db, htmx, hub, limiter, login_manager, sock
    from desk.web import auth  # (login loaders register on import)

    proxies = app.config["DESK_TRUSTED_PROXIES"]
    if proxies:
        # Only then is X-Forwarded-For believed: without a proxy that overwrites it, any
        # client could name any address and so dodge the per-address login throttle.
        from werkzeug.middleware.proxy_fix import ProxyFix

        wrapped = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
        app.wsgi_app = wrapped  # type: ignore[method-assign]  # Flask's documented way
    from desk import i18n

    i18n.init_app(app)
    db.init_app(app, on_commit=hub.publish)
    from desk.services.group_commit import GroupCommit

    app.extensions["desk_group_commit"] = GroupCommit(db, app.config["DESK_INGEST_BATCH"])
    sock.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "board.login"
    login_manager.login_message = "Log in to see the desk."
    login_manager.localize_callback = gettext  # (translated when flashed)
    app.config.update(
        RATELIMIT_ENABLED=True,  # the one limiter outlives apps: never inherit a test's "off"
        RATELIMIT_STORAGE_URI=app.config["DESK_REDIS_URL"] or "memory://",
        # Desks sharing a Redis keep their own counts, as they keep their own channel; a
        # Redis that stops answering must not hold a login for long (then: in-process).
        RATELIMIT_STORAGE_OPTIONS={
            "key_prefix": f"{app.config['DESK_REDIS_CHANNEL']}:limits",
            "socket_connect_timeout": 0.5, "socket_timeout": 0.5,
        } if app.config["DESK_REDIS_URL"] else {},
    )
    limiter.init_app(app)
    app.register_error_handler(auth.RateLimitExceeded, auth.too_many_attempts)

    @login_manager.unauthorized_handler
    def _unauthorized() -> ResponseReturnValue:
        from flask import abort, redirect, request, url_for

        if request.path.startswith(("/api/", "/ws")):
            abort(401, "Log in, or send 'Authorization: Bearer <token>'.")
        return redirect(url_for("board.login", next=request.full_path.rstrip("?")))


def register_blueprints(app: Flask) -> None:
    from desk.api import bp as api_bp
    from desk.errors import register_errors
    from desk.providers import register_webhooks
    from desk.web import bp as board_bp
    from desk.web.formatting import register_filters
    from desk.web.labels import register_labels
    from desk.web.softphone import bp as softphone_bp

    app.register_blueprint(board_bp)
    app.register_blueprint(softphone_bp)
    app.register_blueprint(api_bp)
    register_webhooks(app)
    register_errors(app)
    register_filters(app)
    register_labels(app)


def register_live(app: Flask) -> None:
    from desk.extensions import hub
    from desk.live.reader import use_loop_readers
    from desk.live.render import render_status, render_tick, render_voices
    from desk.live.views import bp as live_bp

    app.register_blueprint(live_bp)
    use_loop_readers(app.config["SOCK_SERVER_OPTIONS"])
    from sqlalchemy.engine import Engine

    from desk.extensions import db
    from desk.live import sequence

    def engine() -> Engine:
        assert db.engine is not None  # (register_extensions ran first)
        return db.engine

    hub.configure(
        renderer=lambda changes, audiences: render_voices(app, changes, audiences),
        redis_url=app.config["DESK_REDIS_URL"],
        status_renderer=lambda voices: render_status(app, voices),
        channel=app.config["DESK_REDIS_CHANNEL"],
        latest=lambda: sequence.latest(engine()),
        catch_up=lambda after, missing: sequence.since(engine(), after, missing),
        catch_up_interval=app.config["DESK_LIVE_CATCHUP_INTERVAL"],
        ticker=lambda audiences: render_tick(app, audiences),
    )


def register_cli(app: Flask) -> None:
    from desk.cli import register_cli as register

    register(app)


def register_security(app: Flask) -> None:
    from desk.web.security import register_security as register

    register(app)


def register_embedding(app: Flask) -> None:
    from desk.web.embed import register_embedding as register

    register(app)


def register_metrics(app: Flask) -> None:
    """``/healthz`` (ok or not) and, with ``DESK_METRICS_TOKEN``, ``/metrics``."""
    from desk.metrics import register_metrics as register

    register(app)


def register_background(app: Flask) -> None:
    """The one place that starts background work: the providers' clients and consumers
    (``desk.providers.start``), the sweeper that ends calls providers forget
    (``desk.services.sweeper``) and, in demo mode, the simulators. Consumers, the sweeper and
    simulators start with a server process's first request, never at import or in CLI
    commands."""
    from desk import providers
    from desk.services import sweeper
    from desk.simulator import register_simulators

    providers.start(app)
    sweeper.init_app(app)
    register_simulators(app)
