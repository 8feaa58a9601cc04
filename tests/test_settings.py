"""desk.settings: environment in, config out, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from desk.settings import SettingsError, load_settings


def test_secret_key_is_required_outside_demo_mode() -> None:
    env = {"DESK_PLACETEL_USER": "u", "DESK_PLACETEL_PASSWORD": "p"}
    with pytest.raises(SettingsError, match="DESK_SECRET_KEY is required"):
        load_settings(environ=env)
    assert load_settings(environ={**env, "DESK_SECRET_KEY": "k"})["SECRET_KEY"] == "k"


def test_without_providers_the_desk_is_still_a_production_desk(tmp_path: Path) -> None:
    # No provider configured no longer means demo: the secret key is required, and nothing
    # simulated runs even when DESK_SIMULATE asks for it.
    with pytest.raises(SettingsError, match="DESK_SECRET_KEY is required"):
        load_settings(environ={}, instance_path=tmp_path)
    config = load_settings(environ={"DESK_SECRET_KEY": "k", "DESK_SIMULATE": "1"},
                           instance_path=tmp_path)
    assert config["DESK_DEMO"] is False and config["DESK_SIMULATE"] is False
    assert config["PROVIDERS_CONFIGURED"] is False
    assert config["SESSION_COOKIE_SECURE"] is True
    assert ("Placetel", "DESK_PLACETEL_USER") in config["PROVIDER_SETTINGS"]


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", " ON "])
def test_demo_mode_only_when_asked_for(tmp_path: Path, value: str) -> None:
    config = load_settings(environ={"DESK_DEMO": value}, instance_path=tmp_path)
    assert config["DESK_DEMO"] is True and config["DESK_SIMULATE"] is True
    assert config["DESK_DATABASE_URL"] == f"sqlite:///{tmp_path / 'desk.sqlite3'}"
    assert config["SESSION_COOKIE_SECURE"] is False
    with_provider = load_settings(
        environ={"DESK_DEMO": value, "DESK_STRINGEE_TOKEN": "t"}, instance_path=tmp_path
    )
    assert with_provider["DESK_DEMO"] is True and with_provider["DESK_SIMULATE"] is False
    assert with_provider["PROVIDERS_CONFIGURED"] is True


def test_production_cookies_are_secure() -> None:
    config = load_settings(environ={"DESK_SECRET_KEY": "k", "DESK_DEMO": "0"})
    assert config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DESK_DEMO": "maybe"}, "DESK_DEMO must be"),
        ({"DESK_ENDED_CALLS_SHOWN": "lots"}, "DESK_ENDED_CALLS_SHOWN must be a whole number"),
        ({"DESK_ENDED_CALLS_SHOWN": "0"}, "at least 1"),
        ({"DESK_PLACETEL_USER": "u", "DESK_SECRET_KEY": "k"}, "Set both DESK_PLACETEL_USER"),
    ],
)
def test_malformed_settings_say_which_and_how(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=env)
