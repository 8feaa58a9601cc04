"""Template filters and globals: how numbers and times read on a board, which buttons show.

Times are shown in the reader's time zone (``desk.i18n``: theirs, else ``DESK_TIMEZONE``)
and dates and numbers as the reader's language writes them (Babel). Clock times are 24-hour
in every language, as call centres read them.
"""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_skeleton
from flask import Flask
from flask_babel import format_decimal, format_percent, format_time, get_locale, get_timezone


def duration(seconds: int | float | None) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on (what the browser's timers show too)."""
    total = max(0, int(seconds or 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def clock(moment: datetime | None, seconds: bool = False) -> str:
    """A time of day, HH:MM (or HH:MM:SS), in the reader's time zone."""
    if moment is None:
        return ""
    return str(format_time(moment, "HH:mm:ss" if seconds else "HH:mm"))


def moment(value: datetime | None) -> str:
    """A date and time to the second in the reader's time zone, as their language writes
    it: 02/12/2026, 14:05:33 (English), 2.12.2026, 14:05:33 (German)."""
    if value is None:
        return ""
    locale = get_locale()
    day = format_skeleton("yMd", value, tzinfo=get_timezone(), locale=locale)
    pattern = str(locale.datetime_formats["medium"]) if locale else "{1} {0}"
    return pattern.replace("{1}", day).replace("{0}", clock(value, seconds=True))


def number(value: int | float | None) -> str:
    """A count or measure as the reader's language writes it (1,234 / 1.234)."""
    return str(format_decimal(value or 0))


def percent(value: float | None) -> str:
    """A share (0.87) as a percentage in the reader's language (87 % in German)."""
    return str(format_percent(value or 0))


def zone() -> str:
    """The name of the reader's time zone (Europe/Berlin), for a page that says which."""
    return str(get_timezone())


def register_filters(app: Flask) -> None:
    from desk.services.actions import available

    app.add_template_filter(duration, "duration")
    app.add_template_filter(clock, "clock")
    app.add_template_filter(moment, "moment")
    app.add_template_filter(number, "number")
    app.add_template_filter(percent, "percent")
    app.add_template_global(zone, "time_zone")
    app.add_template_global(available, "call_actions")
