"""Teleforge Click2Dial: the desk dials through its REST API and reads its Redis notifications.

``rules`` (pure) checks what an agent typed and builds the request body, ``client`` posts it,
``parse`` (pure) reads the notifications Teleforge pushes onto Redis LISTs and ``listener``
consumes them reliably; ``simulator`` stands in for the PBX in demo mode.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from desk.providers.base import Provider


def _check(config: dict[str, Any]) -> None:
    from desk.settings import flag

    config["DESK_TELEFORGE_LISTEN"] = flag("DESK_TELEFORGE_LISTEN",
                                           config["DESK_TELEFORGE_LISTEN"])
    config["DESK_TELEFORGE_CALLER_IDS"] = [
        part.strip() for part in str(config["DESK_TELEFORGE_CALLER_IDS"]).split(",")
        if part.strip()
    ]


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
        "DESK_TELEFORGE_LIST": ("teleforge:notifications", "str"),
        "DESK_TELEFORGE_CALLER_IDS": ("", "str"),
        "DESK_TELEFORGE_LISTEN": ("1", "str"),
    },
    configured_by=("DESK_TELEFORGE_URL",),
    check_settings=_check,
    start="desk.providers.teleforge:start",
    simulator="desk.providers.teleforge.simulator",
)
