"""Placetel Notify + Call Control: form-encoded call notifications, answered with routing XML.

``parse`` (pure) turns a Notify delivery into call events, ``route`` renders a routing
decision as Call Control XML, ``views`` serves ``POST /webhooks/placetel``. Deliveries are
authenticated with the Basic credentials in the pasted URL, with Placetel's
``X-PLACETEL-SIGNATURE`` (HMAC-SHA256 of the body with the portal's shared secret), or both.
"""

from __future__ import annotations

from typing import Any

from desk.providers.base import Provider


def _check(config: dict[str, Any]) -> None:
    from desk.settings import SettingsError

    if bool(config["DESK_PLACETEL_USER"]) != bool(config["DESK_PLACETEL_PASSWORD"]):
        raise SettingsError(
            "Set both DESK_PLACETEL_USER and DESK_PLACETEL_PASSWORD (they are the Basic auth "
            "credentials you put into the URL in Placetel's portal), or neither."
        )


PROVIDER = Provider(
    name="placetel",
    title="Placetel",
    settings={
        "DESK_PLACETEL_USER": ("", "str"),
        "DESK_PLACETEL_PASSWORD": ("", "str"),
        "DESK_PLACETEL_SECRET": ("", "str"),
    },
    configured_by=("DESK_PLACETEL_USER", "DESK_PLACETEL_PASSWORD", "DESK_PLACETEL_SECRET"),
    webhooks=("POST /webhooks/placetel",),
    views="desk.providers.placetel.views",
    check_settings=_check,
)
