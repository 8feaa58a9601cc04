"""Query parameters the API's routes share, checked before any query runs.

A bad one is answered 400 with a message naming it and saying what to send: whole numbers
are ASCII digits within range (ids up to ``desk.errors.MAX_ID``), times are ISO 8601 and
must exist in UTC too, text has a length limit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, request

from desk.errors import whole_number


def when(name: str) -> datetime | None:
    """``name`` as an aware UTC time, or None when absent."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        # Stored times are UTC: 9999-12-31T23:59:59-23:00 parses, but is past year 9999 there.
        return value.astimezone(UTC)
    except ValueError:
        abort(400, f"'{name}' must be an ISO 8601 date or time, e.g. 2026-11-22T08:00:00Z.")
    except OverflowError:
        abort(400, f"'{name}' is out of range: it must be a time between the years 1 and 9999 "
                   "in UTC.")


def whole(name: str, default: int, low: int, high: int) -> int:
    """``name`` as a whole number from ``low`` to ``high``; ``default`` when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw, low, high)
    if value is None:
        abort(400, f"'{name}' must be a whole number from {low} to {high}, not {raw[:20]!r}.")
    return value


def text(name: str, longest: int) -> str:
    """``name`` stripped, at most ``longest`` characters; "" when absent."""
    value = (request.args.get(name) or "").strip()
    if len(value) > longest:
        abort(400, f"'{name}' is at most {longest} characters, not {len(value)}.")
    return value


def time_range(first: str, last: str) -> tuple[datetime | None, datetime | None]:
    """Two times that must not be the wrong way round."""
    start, end = when(first), when(last)
    if start and end and end < start:
        abort(400, f"'{last}' is before '{first}'; swap them.")
    return start, end
