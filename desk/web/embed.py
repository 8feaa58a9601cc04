"""Embedding the desk in a CRM: framing headers, iframe-safe cookies, the popup login.

**Framing.** Every response carries ``Content-Security-Policy: frame-ancestors 'self'``
plus the origins in ``DESK_EMBED_ORIGINS``. With no origins listed the desk also sends
``X-Frame-Options: SAMEORIGIN`` (for old browsers); with origins it must not, because that
header would forbid the CRM.

**Sessions in a third-party iframe.** With embedding on, the session cookie is
``Secure; HttpOnly; SameSite=None; Partitioned`` (CHIPS: Chrome keeps it for the desk *inside
this CRM* even where third-party cookies are blocked; Firefox partitions by itself). Because
a ``SameSite=None`` cookie rides on cross-site requests, *every* state-changing request needs
a CSRF token; this module runs Flask-WTF's check itself (``_authenticate``) so it can skip it
for the one kind of request that carries no cookie: the iframe token below.

**Login where cookies are blocked** (Safari, strict settings). The iframe's login page offers
"Log in in a new window": a first-party popup logs in as usual, then ``/embed/login`` hands a
one-time code (60 s, single use, stored hashed) to ``window.opener`` with the exact desk
origin as the target. The iframe (same origin) exchanges it with ``POST /embed/exchange``,
which answers two credentials at once:

* a session cookie (partitioned). The iframe checks ``/embed/session``; if the browser kept
  the cookie, the desk simply reloads and works as in a tab. This is the normal path.
* else an **iframe token** (8 hours, one shift; ended by logging out anywhere, with every
  other grant of that user: ``desk.web.auth.end_sessions``), kept in the iframe's
  ``sessionStorage`` only and sent as ``Authorization: Bearer deskembed_…`` by htmx.
  Navigations and the websocket cannot send headers, so they use a **ticket**: one page load
  or one websocket connect, 60 s, single use, in ``?desk_ticket=``. Long-lived secrets never
  appear in a URL; a ticket in a URL is spent the moment it is used. A ticket never switches
  a browser that is logged in as someone else: it is ignored there, with a message, so a
  link cannot log a person in as another user.

Requests authenticated by the iframe token (or a ticket) carry no cookie an attacker's page
could ride on, so they skip CSRF, exactly like API bearer tokens (``desk.web.auth``).
The postMessage protocol itself lives in ``static/embed/embed.js`` (documented in README).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import click
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    render_template,
    request,
)
from flask.cli import with_appcontext
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import current_user, login_required, login_user
from sqlalchemy import delete, select, update
from werkzeug.wrappers import Response

from desk.db import end_reads
from desk.errors import error_response
from desk.extensions import csrf, current_app_object, db, login_manager
from desk.models import ApiToken, EmbedGrant, User, utcnow
from desk.services.presence import set_presence
from desk.web.auth import exchange_limits, throttled

CODE_TTL = timedelta(seconds=60)
TICKET_TTL = timedelta(seconds=60)
TOKEN_TTL = timedelta(hours=8)
TOKEN_PREFIX = "deskembed_"
TICKET_PARAM = "desk_ticket"
PROTOCOL = "desk/1"
_TTL = {"code": CODE_TTL, "ticket": TICKET_TTL, "token": TOKEN_TTL}

bp = Blueprint("embed", __name__, url_prefix="/embed")


# -- grants: codes, tickets, tokens ----------------------------------------------------------


def issue(user_id: int, kind: str) -> str:
    """Store a new grant of ``kind`` for the user; returns the secret (shown once)."""
    prefix = TOKEN_PREFIX if kind == "token" else ""
    secret = prefix + secrets.token_urlsafe(32)
    now = utcnow()
    end_reads(db.session)
    db.session.add(EmbedGrant(
        kind=kind, secret_hash=ApiToken.hash(secret), user_id=user_id,
        created_at=now, expires_at=now + _TTL[kind],
    ))
    # Expired grants are of no use to anyone: sweep them while we are writing anyway.
    db.session.execute(delete(EmbedGrant).where(EmbedGrant.expires_at < now - timedelta(days=1)))
    db.session.commit()
    return secret


def spend(secret: str, kind: str) -> User | None:
    """The user of an unexpired, unused single-use grant, marking it used; else None.

    One conditional UPDATE, so two requests racing with the same code cannot both win.
    """
    if not secret or len(secret) > 200:
        return None
    now = utcnow()
    end_reads(db.session)
    spent = db.session.execute(
        update(EmbedGrant)
        .where(EmbedGrant.secret_hash == ApiToken.hash(secret), EmbedGrant.kind == kind,
               EmbedGrant.used_at.is_(None), EmbedGrant.expires_at > now)
        .values(used_at=now)
        .returning(EmbedGrant.user_id)
    ).scalar_one_or_none()
    db.session.commit()
    return db.session.get(User, spent) if spent is not None else None


def token_grant(secret: str) -> EmbedGrant | None:
    """The unexpired iframe-token grant for ``secret``; tokens are used many times."""
    return db.session.scalars(
        select(EmbedGrant).where(
            EmbedGrant.secret_hash == ApiToken.hash(secret), EmbedGrant.kind == "token",
            EmbedGrant.expires_at > utcnow(),
        )
    ).first()


# -- every request ---------------------------------------------------------------------------


def _act_as(user: User, how: str) -> None:
    """This request is ``user``'s, without a cookie (Flask-Login's per-request user)."""
    login_manager._update_request_context_with_user(user)
    g.bearer_auth = True  # no cookie involved: the API's CSRF check does not apply either
    g.embed_auth = how


def _authenticate() -> None:
    """Iframe token or ticket first; then CSRF for everything else that changes state."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() == "bearer" and secret.startswith(TOKEN_PREFIX):
        grant = token_grant(secret)
        if grant is None:
            abort(401, gettext("This CRM window's sign-in to the desk has expired. Log in "
                               "again."))
        _act_as(grant.user, "token")
    elif request.method == "GET" and TICKET_PARAM in request.args:
        user = spend(request.args.get(TICKET_PARAM, ""), "ticket")
        if user is None:
            abort(401, gettext("This sign-in link was already used or has expired. Log in "
                               "again."))
        if current_user.is_authenticated and current_user.id != user.id:
            # A link someone sent must not turn this browser into their account (their calls,
            # their actions in this person's name): the session here stays as it is.
            if request.path != "/ws":
                flash(gettext("A sign-in link for another user was ignored: this window stays "
                              "logged in as %(name)s. Log out first to switch users.",
                              name=current_user.name))
        else:
            if request.path != "/ws":
                login_user(user)  # a first-party window (pop-out) keeps its own session now
            _act_as(user, "ticket")
    if not g.get("embed_auth"):
        csrf.protect(apply_exemptions=True)


def _frame_headers(response: Response) -> Response:
    origins = current_app.config["DESK_EMBED_ORIGINS"]
    policy = " ".join(["frame-ancestors 'self'", *origins])
    existing = response.headers.get("Content-Security-Policy", "")
    if existing and "frame-ancestors" not in existing:
        policy = f"{existing}; {policy}"
    response.headers["Content-Security-Policy"] = policy
    if origins:
        response.headers.pop("X-Frame-Options", None)
    else:
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _template_globals() -> dict[str, Any]:
    def ws_ticket() -> str:
        """A ticket for this page's websocket, when the page itself came without a cookie."""
        if g.get("embed_auth") and current_user.is_authenticated:
            return issue(current_user.id, "ticket")
        return ""

    return {"embed": {
        "on": bool(current_app.config["DESK_EMBED_ORIGINS"]),
        "origins": current_app.config["DESK_EMBED_ORIGINS"],
        "auth": g.get("embed_auth") or "",
        "ws_ticket": ws_ticket,
        "protocol": PROTOCOL,
    }}


# -- routes (only with embedding on) ----------------------------------------------------------


def _json_error(status: int, message: str) -> ResponseReturnValue:
    # embed.js reads the message a person sees from "error"; "message" is the desk's usual.
    return error_response(status, message, error=message)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/login")
@login_required
def login_popup() -> ResponseReturnValue:
    """The popup's last step: a one-time code for the iframe that opened it."""
    code = issue(current_user.id, "code")
    return _no_store(current_app.make_response(
        render_template("embed/login_done.html", code=code, me=current_user)
    ))


@bp.post("/exchange")
@csrf.exempt  # the code is the secret; the Origin check keeps other sites out
@throttled(exchange_limits)  # failed exchanges count with failed logins from that address
def exchange() -> ResponseReturnValue:
    origin = request.headers.get("Origin", "")
    if not origin or urlsplit(origin).netloc != request.host:
        return _json_error(403, gettext("Login codes are exchanged by the desk's own page "
                                        "only."))
    body = request.get_json(silent=True)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip():
        return _json_error(400, gettext('Send {"code": "<the code from the login window>"}.'))
    user = spend(code.strip(), "code")
    if user is None:
        return _json_error(400, gettext("That login code was already used or has expired "
                                        "(codes last 60 seconds). Log in again."))
    login_user(user)
    if user.presence == "offline" and not user.is_supervisor:
        set_presence(db.session, user.id, "available")
    token = issue(user.id, "token")
    return _no_store(jsonify(
        token=token, expires_in=int(TOKEN_TTL.total_seconds()), user=user.name,
    ))


@bp.get("/session")
def session_state() -> ResponseReturnValue:
    """Whether this request is logged in, and how (the iframe asks after an exchange)."""
    how = g.get("embed_auth") or ("cookie" if current_user.is_authenticated else "")
    return _no_store(jsonify(authenticated=current_user.is_authenticated, via=how or None))


@bp.post("/ticket")
def ticket() -> ResponseReturnValue:
    """A single-use ticket for one page load or websocket connect (60 s)."""
    if not current_user.is_authenticated:
        return _json_error(401, gettext("Log in first."))
    secret = issue(current_user.id, "ticket")
    return _no_store(jsonify(ticket=secret, param=TICKET_PARAM,
                             expires_in=int(TICKET_TTL.total_seconds())))


@bp.get("/hubspot")
def hubspot() -> ResponseReturnValue:
    """The adapter HubSpot loads as the calling widget; it frames the desk itself."""
    return render_template("embed/hubspot.html")


# -- the example CRM page (demo mode) ---------------------------------------------------------


@click.command("embed-example")
@with_appcontext
@click.option("--port", default=5001, show_default=True, help="Port of the example CRM page.")
@click.option("--desk-url", default="http://127.0.0.1:5000", show_default=True,
              help="Where the desk runs (its origin, as the browser reaches it).")
def embed_example(port: int, desk_url: str) -> None:
    """Serve an example CRM page that embeds the desk, on http://localhost:PORT (demo only).

    localhost and 127.0.0.1 are different sites to a browser, so this behaves like a real
    CRM on another domain. Add http://localhost:PORT to the desk's DESK_EMBED_ORIGINS.
    """
    app = current_app_object()
    if not app.config["DESK_DEMO"]:
        raise click.ClickException(
            "The example CRM page is for demo mode only (DESK_DEMO=1). In production, copy "
            "templates/embed/host_example.html into your CRM instead."
        )
    desk = desk_url.rstrip("/")
    with app.test_request_context():
        page = render_template("embed/host_example.html", desk_url=desk,
                               desk_origin=_origin_of(desk)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls it by this name
            found = self.path.split("?", 1)[0] in ("/", "/index.html")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            body = page if found else b"Not found: the example CRM page is at /"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    click.echo(f"Example CRM page on http://localhost:{server.server_address[1]}/ embedding "
               f"{desk}; the desk needs DESK_EMBED_ORIGINS=http://localhost:{port}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"--desk-url must look like http://127.0.0.1:5000, not {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


# -- the factory's hook -----------------------------------------------------------------------


def register_embedding(app: Flask) -> None:
    """Framing headers always; with ``DESK_EMBED_ORIGINS``: iframe cookies, CSRF on every
    write (token requests excepted), the popup-login routes and the HubSpot adapter."""
    app.after_request(_frame_headers)
    app.context_processor(_template_globals)
    app.cli.add_command(embed_example)
    if not app.config["DESK_EMBED_ORIGINS"]:
        return
    app.config.update(
        SESSION_COOKIE_SAMESITE="None",
        SESSION_COOKIE_SECURE=True,  # browsers drop SameSite=None cookies without Secure
        SESSION_COOKIE_PARTITIONED=True,
        SESSION_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="None",
        REMEMBER_COOKIE_SECURE=True,
        WTF_CSRF_CHECK_DEFAULT=False,  # _authenticate runs the same check, minus token requests
    )
    app.before_request(_authenticate)
    app.register_blueprint(bp)
