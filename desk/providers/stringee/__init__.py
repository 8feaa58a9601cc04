"""Stringee: answer URLs answered with SCCO JSON, and call events POSTed to the event URL.

``parse`` (pure) reads call events and answer-URL requests, ``answers`` (pure) builds the
SCCO, ``views`` serves ``/webhooks/stringee/answer/project``, ``/answer/number`` and
``/events``. Every URL carries ``?token=`` (``DESK_STRINGEE_TOKEN``); with
``DESK_STRINGEE_SECRET`` set, call events must also carry Stringee's ``X-STRINGEE-SIGNATURE``.
"""

from __future__ import annotations

from typing import Any

from desk.providers.base import Provider


def _check(config: dict[str, Any]) -> None:
    from desk.settings import SettingsError

    if config["DESK_STRINGEE_SECRET"] and not config["DESK_STRINGEE_TOKEN"]:
        raise SettingsError(
            "DESK_STRINGEE_SECRET checks the signature of call events only; set "
            "DESK_STRINGEE_TOKEN too and add ?token=<it> to the answer URLs (Stringee's "
            "answer URL requests are GETs the desk authenticates by that token)."
        )


PROVIDER = Provider(
    name="stringee",
    title="Stringee",
    settings={"DESK_STRINGEE_TOKEN": ("", "str"), "DESK_STRINGEE_SECRET": ("", "str")},
    configured_by=("DESK_STRINGEE_TOKEN", "DESK_STRINGEE_SECRET"),
    webhooks=(
        "GET /webhooks/stringee/answer/project",
        "GET /webhooks/stringee/answer/number",
        "POST /webhooks/stringee/events",
    ),
    views="desk.providers.stringee.views",
    check_settings=_check,
)
