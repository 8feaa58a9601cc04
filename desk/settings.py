"""Settings: every knob of the desk is a ``DESK_`` environment variable read here.

``load_env_file`` first reads the ``.env`` file (``DESK_ENV_FILE``) into the environment,
as Flask's command line does, never replacing a variable already set: ``app.py`` calls it,
so ``gunicorn app:app`` and ``flask --app app`` both start from it. ``load_settings`` then
turns the environment (plus an optional mapping from tests) into the Flask config. Each
setting is listed, with a comment, in ``.env.example`` and in README's configuration table;
keep the three in step. Outside demo mode the desk refuses to start
without ``DESK_SECRET_KEY``, because a guessable key lets anyone forge a session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def flag(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be 1/0, true/false, yes/no or on/off, not {raw!r}")


def _int(name: str, raw: Any, minimum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


# name -> (default, kind). Kinds: "str", "flag", "int:<min>", "float", "rate".
ENV_FILE = ".env"

DEFAULTS: dict[str, tuple[Any, str]] = {
    # Read by load_env_file before anything else; in the config only to be seen.
    "DESK_ENV_FILE": (ENV_FILE, "str"),
    "DESK_SECRET_KEY": ("", "str"),
    "DESK_DATABASE_URL": ("", "str"),
    "DESK_REDIS_URL": ("", "str"),
    "DESK_REDIS_CHANNEL": ("desk:live", "str"),
    "DESK_DEMO": ("0", "str"),
    "DESK_COOKIE_SECURE": ("auto", "str"),
    "DESK_PROVIDER_TIMEOUT": ("5", "float"),
    "DESK_TIMEZONE": ("UTC", "str"),
    # The board's language when neither the user's choice nor the browser names one the
    # desk speaks (desk.i18n.LANGUAGES: en, de, vi).
    "DESK_LANGUAGE": ("en", "str"),
    "DESK_TIMER_AMBER": ("180", "int:1"),
    "DESK_TIMER_RED": ("420", "int:1"),
    "DESK_EMBED_ORIGINS": ("", "str"),
    "DESK_SIMULATE": ("", "str"),
    # "auto": the demo's calls follow the agents on shift (desk.simulator.traffic.demo_rate).
    "DESK_SIMULATE_RATE": ("auto", "str"),
    "DESK_SIMULATE_SPEED": ("1", "float"),
    "DESK_ENDED_CALLS_SHOWN": ("20", "int:1"),
    "DESK_WS_PING_INTERVAL": ("25", "int:0"),
    "DESK_WS_COMPRESSION": ("0", "str"),
    "DESK_BOARD_QUEUE": ("200", "int:10"),
    "DESK_MAX_BODY_BYTES": ("262144", "int:1024"),
    "DESK_LOG_LEVEL": ("INFO", "str"),
    "DESK_METRICS_TOKEN": ("", "str"),
    "DESK_LOGIN_LIMIT_ACCOUNT": ("5 per minute", "rate"),
    "DESK_LOGIN_LIMIT_ADDRESS": ("20 per minute", "rate"),
    "DESK_TRUSTED_PROXIES": ("0", "int:0"),
    # Calls always end (desk.services.sweeper): the longest a dialling/ringing or a talking
    # call may go without a word from its provider before the desk closes it, per-provider
    # exceptions ("placetel:talking=3600,..."), how long an action may wait for the
    # provider's confirmation, and how often each server process looks (0: never; run
    # `flask --app app calls sweep` instead).
    "DESK_MAX_SILENCE_RINGING": ("600", "int:10"),
    "DESK_MAX_SILENCE_TALKING": ("28800", "int:10"),
    "DESK_MAX_SILENCE_BY_PROVIDER": ("", "str"),
    "DESK_PENDING_TIMEOUT": ("30", "int:1"),
    "DESK_SWEEP_INTERVAL": ("30", "int:0"),
    # The durable live change sequence: how often each server process reads the changes it
    # has not delivered yet (Redis down, a message lost, a peer killed), and how long the
    # numbered changes are kept.
    "DESK_LIVE_CATCHUP_INTERVAL": ("1", "float"),
    # Group commit (desk.services.group_commit): at most this many webhook deliveries that
    # arrive together share one transaction (1: each its own).
    "DESK_INGEST_BATCH": ("64", "int:1"),
    # After-call work: seconds an available agent spends in wrap-up after a call (0: none).
    "DESK_WRAP_UP_SECONDS": ("60", "int:0"),
    "DESK_LIVE_CHANGES_KEEP": ("3600", "int:60"),
    # Listen-in (desk.services.listen): whether the agent's own row says a supervisor is
    # listening to the call (supervisors always see it).
    "DESK_LISTEN_IN_SHOWN_TO_AGENT": ("0", "str"),
    # The browser softphone (desk.web.softphone): Teleforge's SIP websocket, its SIP domain
    # (empty: the websocket's host) and the key that encrypts the SIP passwords agents let
    # the desk keep (empty: agents type theirs each time).
    "DESK_TELEFORGE_SIP_WS_URL": ("", "str"),
    "DESK_TELEFORGE_SIP_DOMAIN": ("", "str"),
    "DESK_SIP_SECRET_KEY": ("", "str"),
}


def load_env_file(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Read the settings file into ``environ`` (``os.environ``); the file read, or None.

    The file is ``DESK_ENV_FILE`` (relative to the working directory), ``.env`` when that
    is unset, none when it is empty. A variable already in the environment wins over the
    file, so a process manager's or a test's settings are never replaced. ``.env`` may be
    missing; another file named by ``DESK_ENV_FILE`` must exist.
    """
    env = os.environ if environ is None else environ
    named = env.get("DESK_ENV_FILE", ENV_FILE).strip()
    if not named:
        return None
    path = Path(named)
    if not path.is_file():
        if named == ENV_FILE:
            return None
        raise SettingsError(
            f"DESK_ENV_FILE names {named!r}, which is not a file here ({Path.cwd()}); "
            "give the path of your settings file, or set it empty to read none"
        )
    from dotenv import dotenv_values

    for name, value in dotenv_values(path, encoding="utf-8").items():
        if value is not None and name not in env:
            env[name] = value
    return path


def all_settings() -> dict[str, tuple[Any, str]]:
    """The desk's own settings and every registered provider's (``desk.providers``)."""
    from desk.providers import REGISTRY

    settings = dict(DEFAULTS)
    for provider in REGISTRY.values():
        settings.update(provider.settings)
    return settings


def providers_configured(config: Mapping[str, Any]) -> bool:
    """True when at least one real provider is configured (then the simulators are off)."""
    from desk.providers import REGISTRY

    return any(
        config.get(name) for provider in REGISTRY.values() for name in provider.configured_by
    )


def _float(name: str, raw: Any) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if not 0 < value <= 600:
        raise SettingsError(f"{name} must be more than 0 and at most 600, not {value}")
    return value


def _rate(name: str, raw: Any) -> str:
    """A rate limit such as ``5 per minute`` (several: ``5 per minute; 30 per hour``)."""
    from limits import parse_many

    value = str(raw).strip()
    try:
        rates = parse_many(value)
    except ValueError:
        rates = []
    if not rates or any(rate.amount < 1 for rate in rates):
        raise SettingsError(
            f"{name} must be a rate such as '5 per minute' (or several, separated by ';'), "
            f"not {raw!r}"
        )
    return value


def _softphone_settings(config: dict[str, Any]) -> None:
    """The softphone's websocket must be a ws:// or wss:// address (it is named in the pages'
    connect-src), its domain a host name, its key a Fernet key; the domain defaults to the
    websocket's host."""
    from urllib.parse import urlsplit

    url = config["DESK_TELEFORGE_SIP_WS_URL"]
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not re.fullmatch(
            r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", parts.netloc or ""
        ):
            raise SettingsError(
                "DESK_TELEFORGE_SIP_WS_URL takes Teleforge's SIP websocket, like "
                f"wss://pbx.example.com:8089/ws (ws:// or wss://, a host, a port), not {url!r}"
            )
        if not config["DESK_TELEFORGE_SIP_DOMAIN"]:
            config["DESK_TELEFORGE_SIP_DOMAIN"] = parts.hostname or ""
    domain = config["DESK_TELEFORGE_SIP_DOMAIN"]
    if domain and not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]", domain):
        raise SettingsError(
            f"DESK_TELEFORGE_SIP_DOMAIN takes a host name such as pbx.example.com, not {domain!r}"
        )
    key = config["DESK_SIP_SECRET_KEY"]
    if key:
        from cryptography.fernet import Fernet

        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                "DESK_SIP_SECRET_KEY must be a Fernet key (32 bytes, url-safe base64): generate "
                "one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`"
            ) from None


SILENCE_STATES = ("dialling", "ringing", "talking")


def silences(raw: Any, providers: Mapping[str, Any]) -> dict[str, int]:
    """``DESK_MAX_SILENCE_BY_PROVIDER`` (``provider:state=seconds``, comma-separated) as
    {"provider:state": seconds}."""
    if isinstance(raw, Mapping):
        return dict(raw)
    limits: dict[str, int] = {}
    for part in str(raw or "").split(","):
        if not part.strip():
            continue
        key, _, seconds = part.partition("=")
        provider, _, state = key.strip().lower().partition(":")
        if provider not in providers or state not in SILENCE_STATES or not seconds.strip():
            raise SettingsError(
                "DESK_MAX_SILENCE_BY_PROVIDER takes entries like placetel:talking=3600 "
                f"(providers: {', '.join(providers)}; states: {', '.join(SILENCE_STATES)}), "
                f"comma-separated, not {part.strip()!r}"
            )
        limits[f"{provider}:{state}"] = _int("DESK_MAX_SILENCE_BY_PROVIDER", seconds, 10)
    return limits


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    instance_path: str | os.PathLike[str] = "instance",
) -> dict[str, Any]:
    """Build the desk's config from the environment, with ``overrides`` taking precedence."""
    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    known = all_settings()
    raw: dict[str, Any] = {}
    for name, (default, _kind) in known.items():
        raw[name] = overrides.pop(name, env.get(name, default))

    config: dict[str, Any] = {}
    for name, (_default, kind) in known.items():
        value = raw[name]
        if kind.startswith("int:"):
            config[name] = _int(name, value, int(kind.split(":", 1)[1]))
        elif kind == "float":
            config[name] = _float(name, value)
        elif kind == "rate":
            config[name] = _rate(name, value)
        else:
            config[name] = str(value).strip() if isinstance(value, str) else value

    # Demo mode only when asked for (`make run` asks): a desk started any other way is a
    # production desk, even before its first provider is configured, so a forgotten setting
    # never leaves webhooks open or demo logins about.
    config["DESK_DEMO"] = flag("DESK_DEMO", config["DESK_DEMO"])

    testing = bool(overrides.get("TESTING"))
    if not config["DESK_SECRET_KEY"]:
        if not (config["DESK_DEMO"] or testing):
            raise SettingsError(
                "DESK_SECRET_KEY is required outside demo mode. Generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'` and set it in "
                "the environment (see .env.example)."
            )
        config["DESK_SECRET_KEY"] = "demo-only-insecure-key"

    if not config["DESK_DATABASE_URL"]:
        path = Path(instance_path).resolve() / "desk.sqlite3"
        config["DESK_DATABASE_URL"] = f"sqlite:///{path}"

    secure = str(config["DESK_COOKIE_SECURE"]).lower()
    config["DESK_COOKIE_SECURE"] = (
        not config["DESK_DEMO"] if secure == "auto" else flag("DESK_COOKIE_SECURE", secure)
    )

    try:
        ZoneInfo(config["DESK_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"DESK_TIMEZONE must be an IANA time zone such as Europe/Berlin, not "
            f"{config['DESK_TIMEZONE']!r}"
        ) from None
    from desk.i18n import LANGUAGES

    config["DESK_LANGUAGE"] = str(config["DESK_LANGUAGE"]).strip().lower()
    if config["DESK_LANGUAGE"] not in LANGUAGES:
        raise SettingsError(
            f"DESK_LANGUAGE must be one of {', '.join(LANGUAGES)}, not {config['DESK_LANGUAGE']!r}"
        )
    if config["DESK_TIMER_RED"] <= config["DESK_TIMER_AMBER"]:
        raise SettingsError("DESK_TIMER_RED must be more seconds than DESK_TIMER_AMBER.")
    origins = [o.strip().rstrip("/") for o in config["DESK_EMBED_ORIGINS"].split(",") if o.strip()]
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
            raise SettingsError(
                f"DESK_EMBED_ORIGINS takes origins like https://crm.example.com (scheme, host, "
                f"optional port; no path, no '*'), not {origin!r}"
            )
    config["DESK_EMBED_ORIGINS"] = origins
    _softphone_settings(config)
    from desk.providers import REGISTRY

    # Simulated demo traffic: in demo mode only (on unless DESK_SIMULATE turns it off), and
    # never when a provider is configured, whatever DESK_SIMULATE says.
    simulate = config["DESK_SIMULATE"]
    wanted = True if simulate in ("", None) else flag("DESK_SIMULATE", simulate)
    configured = providers_configured(config)
    config["DESK_SIMULATE"] = wanted and config["DESK_DEMO"] and not configured
    rate = str(config["DESK_SIMULATE_RATE"]).strip().lower()
    config["DESK_SIMULATE_RATE"] = (None if rate in ("auto", "")
                                    else _float("DESK_SIMULATE_RATE", rate))
    # Derived, not settings: the supervisor board warns a production desk that has no provider
    # yet, naming the setting that configures each one.
    config["PROVIDERS_CONFIGURED"] = configured
    config["PROVIDER_SETTINGS"] = [
        (provider.title, provider.configured_by[0])
        for provider in REGISTRY.values() if provider.configured_by
    ]
    config["DESK_WS_COMPRESSION"] = flag("DESK_WS_COMPRESSION", config["DESK_WS_COMPRESSION"])
    config["DESK_LISTEN_IN_SHOWN_TO_AGENT"] = flag("DESK_LISTEN_IN_SHOWN_TO_AGENT",
                                                   config["DESK_LISTEN_IN_SHOWN_TO_AGENT"])
    config["DESK_MAX_SILENCE_BY_PROVIDER"] = silences(config["DESK_MAX_SILENCE_BY_PROVIDER"],
                                                      REGISTRY)
    for provider in REGISTRY.values():
        if provider.check_settings is not None:
            provider.check_settings(config)

    # Flask's own names, derived from ours.
    config.update(
        SECRET_KEY=config["DESK_SECRET_KEY"],
        MAX_CONTENT_LENGTH=config["DESK_MAX_BODY_BYTES"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config["DESK_COOKIE_SECURE"],
        REMEMBER_COOKIE_SECURE=config["DESK_COOKIE_SECURE"],
        SOCK_SERVER_OPTIONS={"ping_interval": config["DESK_WS_PING_INTERVAL"] or None},
        WTF_CSRF_TIME_LIMIT=None,
    )
    config.update(overrides)  # anything else a test or embedder passes (TESTING, ...)
    return config
