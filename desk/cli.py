"""Operations under ``flask --app app ...``: database migrations and user administration.

``db upgrade`` applies the Alembic revisions in ``migrations/`` to ``DESK_DATABASE_URL``.
``users create`` reads the password from standard input when it is not a terminal (for
scripts: ``echo "$PW" | flask --app app users create ann --role agent --extension 101``),
otherwise prompts twice; so does ``users password``, which also ends every session of that
user. ``users token`` prints a new API token once (only its hash is kept);
``users revoke-tokens`` revokes all of a user's tokens. ``calls sweep`` ends the calls
providers went silent about (``desk.services.sweeper``) once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from desk._resources import MIGRATIONS
from desk.extensions import current_app_object, db
from desk.models import ROLES, ApiToken, User, utcnow

db_cli = AppGroup("db", help="Database schema.")
users_cli = AppGroup("users", help="Agents and supervisors.")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade_database(app: Flask) -> None:
    """Bring the schema to the newest revision (also used by tests on PostgreSQL)."""
    url = app.config["DESK_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    upgrade_database(current_app_object())
    click.echo("Database is up to date.")


@db_cli.command("revision")
@click.argument("message")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    config = alembic_config(current_app.config["DESK_DATABASE_URL"])
    command.revision(config, message=message, autogenerate=True)


def _password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("The password must have at least 8 characters.")
    return password


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True)
@click.option("--extension", help="The agent's phone extension, e.g. 101.")
@click.option("--sip-peer", help="The SIP peer providers name when this agent answers.")
@click.option("--stringee-user-id", help="The agent's user id in the Stringee app, e.g. user1.")
def users_create(
    name: str, role: str, extension: str | None, sip_peer: str | None,
    stringee_user_id: str | None,
) -> None:
    """Create a user; the password comes from standard input or a prompt."""
    name = name.strip()
    if not name or len(name) > 80:
        raise click.ClickException("NAME must be 1 to 80 characters.")
    if extension is not None and not (extension.isdigit() and 2 <= len(extension) <= 8):
        raise click.ClickException("--extension must be 2 to 8 digits, e.g. 101.")
    if stringee_user_id is not None and not 1 <= len(stringee_user_id.strip()) <= 255:
        raise click.ClickException("--stringee-user-id must be 1 to 255 characters.")
    user = User(
        name=name, role=role, extension=extension, sip_peer=sip_peer or None,
        stringee_user_id=(stringee_user_id or "").strip() or None, presence="offline",
    )
    user.set_password(_password())
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(
            f"A user named {name!r} (or with that SIP peer or Stringee user id) exists already."
        ) from None
    click.echo(f"Created {role} {name}" + (f" (extension {extension})" if extension else "") + ".")


@users_cli.command("token")
@click.argument("name")
def users_token(name: str) -> None:
    """Print a new API token for NAME (shown once; keep it somewhere safe)."""
    row, plain = ApiToken.issue(_user_named(name))
    db.session.add(row)
    db.session.commit()
    click.echo(plain)


def _user_named(name: str) -> User:
    user = db.session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise click.ClickException(f"No user named {name!r}. See: flask --app app users list")
    return user


@users_cli.command("password")
@click.argument("name")
def users_password(name: str) -> None:
    """Set NAME's password (standard input or a prompt) and end all of NAME's sessions."""
    from desk.web.auth import end_sessions

    user = _user_named(name)
    user.set_password(_password())
    db.session.commit()
    end_sessions(user.id)  # whoever knew the old password is logged out everywhere
    click.echo(f"New password set for {name}; every session of {name} has ended.")


@users_cli.command("revoke-tokens")
@click.argument("name")
def users_revoke_tokens(name: str) -> None:
    """Revoke every API token of NAME (scripts and CRMs using them get 401 from now on)."""
    user = _user_named(name)
    revoked = len(db.session.scalars(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()).returning(ApiToken.id)
    ).all())
    db.session.commit()
    click.echo(f"Revoked {revoked} API token{'' if revoked == 1 else 's'} of {name}.")


@users_cli.command("list")
def users_list() -> None:
    """List users with role, extension and presence."""
    for user in db.session.scalars(select(User).order_by(User.name)):
        click.echo(
            f"{user.name:20} {user.role:10} ext {user.extension or '-':6} "
            f"{user.presence:9} {user.sip_peer or ''}"
        )


DEMO_USERS = (
    ("agent", "agent", "101", "agent101@desk.demo"),
    ("agent2", "agent", "102", "agent102@desk.demo"),
    ("supervisor", "supervisor", "100", None),
)
DEMO_PASSWORD = "demo-password"


@users_cli.command("demo")
def users_demo() -> None:
    """Create the demo users: in demo mode (DESK_DEMO=1) with no provider configured, and only
    when there are no users yet (a desk with real providers never gets the known password)."""
    if not current_app.config["DESK_DEMO"]:
        click.echo("Not in demo mode (DESK_DEMO=1 turns it on): no demo users created.")
        return
    if current_app.config["PROVIDERS_CONFIGURED"]:
        click.echo("A provider is configured: no demo users created.")
        return
    if db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Users exist already; no demo users created.")
        _echo_demo_logins()
        return
    for name, role, extension, peer in DEMO_USERS:
        user = User(name=name, role=role, extension=extension, sip_peer=peer, presence="offline")
        user.set_password(DEMO_PASSWORD)
        db.session.add(user)
    db.session.commit()
    names = ", ".join(name for name, *_ in DEMO_USERS)
    click.echo(f"Demo users {names} created; password: {DEMO_PASSWORD}")
    _echo_demo_logins()


def _echo_demo_logins() -> None:
    """The demo logins that exist, so `make run` shows them on every start."""
    names = [name for name, *_ in DEMO_USERS]
    present = set(db.session.scalars(select(User.name).where(User.name.in_(names))))
    for name, role, extension, _peer in DEMO_USERS:
        if name in present:
            click.echo(f"  Log in as {name!r} with password {DEMO_PASSWORD!r} "
                       f"({role}, extension {extension}).")




teleforge_cli = AppGroup("teleforge", help="Teleforge Click2Dial notifications.")


@teleforge_cli.command("listen")
def teleforge_listen() -> None:
    """Take Teleforge's notifications from its Redis list until stopped (Ctrl+C, SIGTERM).

    For deployments that run the consumer apart from the web servers (set
    DESK_TELEFORGE_LISTEN=0 there). Safe to run several times over: each notification is
    applied once, and what a killed consumer held is recovered by the others.
    """
    import signal

    from desk.providers.teleforge.listener import for_app, redis_url_for

    app = current_app_object()
    url = redis_url_for(app)
    if not url:
        raise click.ClickException(
            "Set DESK_TELEFORGE_REDIS_URL (or DESK_REDIS_URL) to the Redis server Teleforge "
            "pushes its notifications to."
        )
    if not app.config["DESK_REDIS_URL"]:
        click.echo("Warning: DESK_REDIS_URL is not set, so boards served by other processes "
                   "will not see what this listener applies.", err=True)
    listener = for_app(app, url)
    signal.signal(signal.SIGTERM, lambda *_: listener.stop())
    click.echo(f"Taking Teleforge notifications from {', '.join(listener.lists)} "
               f"(consumer {listener.consumer_id}); Ctrl+C stops.")
    try:
        listener.run()
    except KeyboardInterrupt:
        listener.stop()
    click.echo("Stopped.")


calls_cli = AppGroup("calls", help="Live calls.")


@calls_cli.command("sweep")
def calls_sweep() -> None:
    """Close calls their provider went silent about and expire unconfirmed actions, once.

    Each server process does this every DESK_SWEEP_INTERVAL seconds; this is for a desk
    that turned that off (DESK_SWEEP_INTERVAL=0) and sweeps from cron instead.
    """
    from desk.extensions import hub
    from desk.services.sweeper import sweep

    app = current_app_object()
    with db.new_session() as session:
        swept = sweep(session, app.config)
    # Boards are served by other processes: hand them the changes before this one exits.
    if (swept.closed or swept.expired) and not hub.drain(timeout=10):
        click.echo("Warning: not every change reached the live fan-out; open boards show it "
                   "when they next reconnect.", err=True)
    click.echo(f"Closed {len(swept.closed)} call(s) with no end event received; cleared "
               f"{len(swept.expired)} action(s) the provider did not confirm.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(teleforge_cli)
    app.cli.add_command(calls_cli)
