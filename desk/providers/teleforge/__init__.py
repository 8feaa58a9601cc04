"""Teleforge Click2Dial: the desk dials through its REST API and reads its Redis notifications.

``rules`` (pure) checks what an agent typed and builds the request body, ``client`` posts it,
``parse`` (pure) reads the notifications Teleforge pushes onto Redis LISTs (``cdr`` at the
end of every call, ``call`` when an inbound call is bridged to an agent), ``fold`` keeps what
they say beyond the call's state, and ``listener`` consumes every configured list reliably;
``simulator`` stands in for the PBX in demo mode.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from desk.providers.base import Provider

DEFAULT_LISTS = "enigma:notifications:cdr,enigma:notifications:inbound"
"""Where Teleforge pushes CDRs and inbound call connections (its "Click2Dial" page)."""
POP_ENDS = ("right", "left")


def _names(raw: Any) -> list[str]:
    parts = raw if isinstance(raw, list | tuple) else str(raw or "").split(",")
    return [str(part).strip() for part in parts if str(part).strip()]


def _check(config: dict[str, Any]) -> None:
    """Lists and flags into their working form; a setting that cannot work stops the desk.

    ``DESK_TELEFORGE_LISTS`` becomes the list of names to consume. ``DESK_TELEFORGE_LIST``
    (the older one-list setting) is an alias kept for existing deployments: when set, its
    list is consumed too, after those of ``DESK_TELEFORGE_LISTS`` (once, if it is one of them).
    """
    from desk.settings import SettingsError, flag

    config["DESK_TELEFORGE_LISTEN"] = flag("DESK_TELEFORGE_LISTEN",
                                           config["DESK_TELEFORGE_LISTEN"])
    config["DESK_TELEFORGE_CALLER_IDS"] = _names(config["DESK_TELEFORGE_CALLER_IDS"])
    names = _names(config["DESK_TELEFORGE_LISTS"])
    alias = str(config.get("DESK_TELEFORGE_LIST") or "").strip()
    if alias and alias not in names:
        names.append(alias)
    if not names and (config.get("DESK_TELEFORGE_URL") or config.get("DESK_TELEFORGE_REDIS_URL")):
        raise SettingsError(
            "DESK_TELEFORGE_LISTS names no Redis list; Teleforge pushes its notifications onto "
            f"{DEFAULT_LISTS} (comma-separated)."
        )
    config["DESK_TELEFORGE_LISTS"] = names
    end = str(config["DESK_TELEFORGE_POP_END"]).strip().lower()
    if end not in POP_ENDS:
        raise SettingsError(
            f"DESK_TELEFORGE_POP_END must be right or left (the end of the list the desk takes "
            f"from), not {config['DESK_TELEFORGE_POP_END']!r}"
        )
    config["DESK_TELEFORGE_POP_END"] = end


def start(app: Flask) -> None:
    """The dial client (its version checked now) and this process's notification consumer."""
    from desk.providers.teleforge import client, listener

    client.init_app(app)
    listener.init_app(app)


PROVIDER = Provider(
    name="teleforge",
    title="Teleforge Click2Dial",
    settings={
        "DESK_TELEFORGE_URL": ("", "str"),
        "DESK_TELEFORGE_VERSION": ("3.3", "str"),
        "DESK_TELEFORGE_REDIS_URL": ("", "str"),
        "DESK_TELEFORGE_LISTS": (DEFAULT_LISTS, "str"),
        "DESK_TELEFORGE_LIST": ("", "str"),
        "DESK_TELEFORGE_POP_END": ("right", "str"),
        "DESK_TELEFORGE_CALLER_IDS": ("", "str"),
        "DESK_TELEFORGE_LISTEN": ("1", "str"),
        # Tries before a notification that fails for a reason other than an outage is set
        # aside on <list>:dead (listener.DEAD_SUFFIX).
        "DESK_TELEFORGE_MAX_TRIES": ("3", "int:1"),
    },
    configured_by=("DESK_TELEFORGE_URL",),
    check_settings=_check,
    start="desk.providers.teleforge:start",
    simulator="desk.providers.teleforge.simulator",
)
