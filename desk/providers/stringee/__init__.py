"""Stringee: answer URLs answered with SCCO JSON, and call events POSTed to the event URL.

``parse`` (pure) reads call events, ``answers`` (pure) builds the SCCO, ``views`` serves
``/webhooks/stringee/answer/project``, ``/answer/number`` and ``/events``.
"""

from __future__ import annotations

from desk.providers.base import Provider

PROVIDER = Provider(
    name="stringee",
    title="Stringee",
    settings={"DESK_STRINGEE_TOKEN": ("", "str")},
    configured_by=("DESK_STRINGEE_TOKEN",),
    webhooks=(
        "GET /webhooks/stringee/answer/project",
        "GET /webhooks/stringee/answer/number",
        "POST /webhooks/stringee/events",
    ),
    views="desk.providers.stringee.views",
)
