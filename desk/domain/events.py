"""The normalized call event every provider adapter produces, and the parse result type.

Adapters (``desk.providers.*``) are pure: they turn a provider's payload into a ``Parsed``
(the events plus the delivery's dedupe key) or raise ``BadPayload`` with a message a person
can act on. ``desk.domain.state.merge`` folds them into a call and ``desk.services.ingest``
stores the result; nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

EventKind = Literal["dialling", "ringing", "answered", "ended"]


class BadPayload(ValueError):
    """The delivery cannot be understood; the message is returned to the sender (400)."""


@dataclass(frozen=True)
class CallEvent:
    """One thing that happened to one call, in the desk's words.

    ``at`` is when it happened: the provider's timestamp when it sends one, else the time
    the delivery arrived. ``answered_by`` is whatever the provider names the answering party
    with (a SIP peer, an extension, a user id); ``desk.services.ingest`` maps it to an agent.
    """

    provider: str
    provider_call_id: str
    kind: EventKind
    at: datetime
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    answered_by: str | None = None
    end_cause: str | None = None
    duration: int | None = None


@dataclass(frozen=True)
class Parsed:
    """What an adapter understood of one delivery."""

    kind: str
    provider_call_id: str
    dedupe_key: str
    events: tuple[CallEvent, ...] = field(default_factory=tuple)
