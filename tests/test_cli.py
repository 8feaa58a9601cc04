"""``flask --app app users ...``: creating users and tokens from scripts and prompts."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from desk.extensions import db
from desk.models import ApiToken, User


def test_users_create_reads_the_password_from_stdin(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "cat", "--role", "agent", "--extension", "103",
              "--sip-peer", "777cat@fpbx.de"],
        input="a-long-password\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalars(select(User).where(User.name == "cat")).one()
        assert (user.role, user.extension, user.sip_peer) == ("agent", "103", "777cat@fpbx.de")
        assert user.check_password("a-long-password")


def test_users_create_refuses_duplicates_short_passwords_and_bad_extensions(
    runner: FlaskCliRunner, users: dict
) -> None:
    dup = runner.invoke(args=["users", "create", "ann"], input="a-long-password\n")
    assert dup.exit_code != 0 and "exists already" in dup.output
    short = runner.invoke(args=["users", "create", "dan"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output
    ext = runner.invoke(args=["users", "create", "dan", "--extension", "1a"], input="x" * 9 + "\n")
    assert ext.exit_code != 0 and "--extension" in ext.output
    role = runner.invoke(args=["users", "create", "dan", "--role", "boss"], input="x" * 9 + "\n")
    assert role.exit_code != 0


def test_users_token_prints_a_token_whose_hash_alone_is_stored(
    app: Flask, runner: FlaskCliRunner, users: dict
) -> None:
    result = runner.invoke(args=["users", "token", "ann"])
    token = result.output.strip()
    assert token.startswith("desk_")
    with app.app_context():
        stored = db.session.scalars(select(ApiToken.token_hash)).all()
    assert stored == [ApiToken.hash(token)] and token not in stored
    missing = runner.invoke(args=["users", "token", "nobody"])
    assert missing.exit_code != 0 and "No user named" in missing.output


def test_demo_users_only_in_demo_mode(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["users", "demo"])
    assert result.exit_code == 0 and "Not in demo mode" in result.output
