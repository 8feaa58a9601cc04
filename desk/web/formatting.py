"""Template filters and globals: how numbers and times read on a board, which buttons show."""

from __future__ import annotations

from flask import Flask


def duration(seconds: int | float | None) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on (what the browser's timers show too)."""
    total = max(0, int(seconds or 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def register_filters(app: Flask) -> None:
    from desk.services.actions import available

    app.add_template_filter(duration, "duration")
    app.add_template_global(available, "call_actions")
