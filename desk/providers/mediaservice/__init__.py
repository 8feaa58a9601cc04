"""iotcomms.io mediaservice: JSON callbacks in, REST call control out.

``parse`` (pure) reads callbacks, ``answers`` (pure) builds the replies the service waits
for, ``routing`` decides them from the database, ``signature`` checks who sent a callback,
``client`` calls the REST API, ``actions`` puts it behind the call buttons and ``views``
serves ``POST /webhooks/mediaservice/<callback>``; ``simulator`` stands in for the service.
"""

from __future__ import annotations

from typing import Any

from desk.providers.base import Provider


def _check(config: dict[str, Any]) -> None:
    from desk.settings import SettingsError

    if config["DESK_MEDIASERVICE_URL"] and not config["DESK_MEDIASERVICE_DOMAIN"]:
        raise SettingsError(
            "DESK_MEDIASERVICE_DOMAIN is required with DESK_MEDIASERVICE_URL "
            "(it looks like customer47.prod-eu-north-1.iotcomms.io)."
        )


PROVIDER = Provider(
    name="mediaservice",
    title="iotcomms.io mediaservice",
    settings={
        "DESK_MEDIASERVICE_URL": ("", "str"),
        "DESK_MEDIASERVICE_DOMAIN": ("", "str"),
        "DESK_MEDIASERVICE_KEY_FILE": ("", "str"),
        "DESK_MEDIASERVICE_CALLBACK_KEY_FILE": ("", "str"),
    },
    configured_by=("DESK_MEDIASERVICE_URL",),
    webhooks=("POST /webhooks/mediaservice/<callback>",),
    capabilities=frozenset({"hangup", "drop", "split", "record"}),
    views="desk.providers.mediaservice.views",
    actions="desk.providers.mediaservice.actions",
    check_settings=_check,
    simulator="desk.providers.mediaservice.simulator",
)
