"""The desk's languages and time zones: which ones a page speaks, and the catalogues.

Every word a person reads on a page goes through gettext (Flask-Babel): ``_()`` and
``{% trans %}`` in templates, ``gettext``/``lazy_gettext`` in Python, and ``_()`` in the page
scripts, which read their part of the catalogue from the page (``js_catalogue``). The
catalogues live in ``desk/translations/<language>/LC_MESSAGES/``: ``messages`` for templates
and Python, ``js`` for ``static/``. ``make i18n-extract``, ``i18n-update`` and
``i18n-compile`` keep them (README, "Languages and time zones"); ``tests/test_i18n.py`` fails
when a string is missing from one.

A page's language is the signed-in user's choice (``User.language``), else the best match
of the browser's ``Accept-Language``, else ``DESK_LANGUAGE``. Its time zone is the user's
(``User.timezone``), else ``DESK_TIMEZONE``. The JSON API, webhooks and the logs always speak
English. A live push is rendered once per *voice* (language and time zone) among the boards
open in the process (``voice_of``, ``speaking``), not once per board.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, Domain, get_locale, get_timezone, get_translations, refresh
from markupsafe import Markup

LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch", "vi": "Tiếng Việt"}
"""The languages the desk speaks: code -> the language's own name (as its speakers write it)."""

TRANSLATIONS = Path(__file__).resolve().parent / "translations"

FORMATS = {"en": "en_GB", "de": "de_DE", "vi": "vi_VN"}
"""The Babel locale that formats dates and numbers for each language. English is the
international (British) one: 24-hour times and day-month dates, as call centres outside the
US read them; the catalogue is still the language's (``en``)."""

ENGLISH_ONLY = ("/api/", "/webhooks/", "/healthz", "/metrics")
"""Paths that always answer in English: machines read them, and so do the logs."""


def _user() -> Any:
    from flask_login import current_user

    try:
        return current_user if current_user.is_authenticated else None
    except Exception:  # no login manager, or the user's row cannot be read: the defaults
        return None


def choose_language() -> str:
    """The language code (a key of ``LANGUAGES``) of the page being rendered."""
    forced = g.get("desk_language")
    if forced:
        return str(forced)
    if has_request_context():
        if request.path.startswith(ENGLISH_ONLY):
            return "en"
        user = _user()
        if user is not None and user.language in LANGUAGES:
            return str(user.language)
        best = request.accept_languages.best_match(list(LANGUAGES))
        if best:
            return best
    return str(current_app.config["DESK_LANGUAGE"])


def choose_timezone() -> str:
    forced = g.get("desk_timezone")
    if forced:
        return str(forced)
    if has_request_context() and not request.path.startswith(ENGLISH_ONLY):
        user = _user()
        if user is not None and user.timezone and valid_timezone(user.timezone):
            return str(user.timezone)
    return str(current_app.config["DESK_TIMEZONE"])


def _locale() -> str:
    return FORMATS[choose_language()]


def current_language() -> str:
    """The code of the language the page speaks (``get_locale`` gives its Babel locale)."""
    locale = get_locale()
    return locale.language if locale is not None else "en"


def voice_of() -> str:
    """This request's voice, "<language> <time zone>": what a live push rendered for the
    request's board must speak (``desk.live.hub.Board.voice``)."""
    return f"{current_language()} {get_timezone()}"


_bound: ContextVar[Translations | NullTranslations | None] = ContextVar(
    "desk_translations", default=None)
"""The catalogue a live render speaks (``speaking``), looked up once for the whole batch."""


def translations() -> Translations | NullTranslations:
    """The catalogue of the page or push being rendered."""
    bound = _bound.get()
    return bound if bound is not None else get_translations()


class _Domain(Domain):
    """Flask-Babel's message domain, except inside ``speaking``: there every message of a
    batch is read from the catalogue bound once, not looked up again in ``g`` (locale,
    domain, cache) for each one; the live render translates hundreds per batch."""

    def get_translations(self) -> Translations | NullTranslations:
        bound = _bound.get()
        return bound if bound is not None else super().get_translations()


@contextmanager
def speaking(voice: str) -> Iterator[None]:
    """Render in ``voice`` (from ``voice_of``; "" for the desk's defaults) inside the
    current app context: for the hub's renderings, which have no request of their own."""
    language, _, zone = voice.partition(" ")
    saved = g.get("desk_language"), g.get("desk_timezone")
    g.desk_language, g.desk_timezone = language or None, zone or None
    refresh()  # Flask-Babel keeps the locale, time zone and catalogue it found last
    outer = _bound.set(None)
    _bound.set(get_translations())  # this voice's catalogue, found once
    try:
        yield
    finally:
        _bound.reset(outer)
        g.desk_language, g.desk_timezone = saved
        refresh()


def valid_timezone(name: str) -> bool:
    return name in _zones()


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezones() -> list[str]:
    """Every IANA time zone a user may choose, by name (the settings page's list)."""
    return sorted(z for z in _zones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))


@lru_cache(maxsize=len(LANGUAGES))
def _js_catalogue(language: str) -> str:
    translations = Translations.load(str(TRANSLATIONS), [language], domain="js")
    messages: dict[str, Any] = {}
    for key, value in getattr(translations, "_catalog", {}).items():
        if isinstance(key, tuple):  # (msgid, plural form index) of an ngettext entry
            messages.setdefault(key[0], []).append(value)
        elif key:  # (the "" entry is the catalogue's header)
            messages[key] = value
    text = json.dumps(messages, ensure_ascii=False, sort_keys=True)
    # Inside <script>: no "</script>" or "<!--" may appear, so "<", ">" and "&" are escaped.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def js_catalogue() -> Markup:
    """The page scripts' messages in the page's language, as JSON for ``base.html``'s
    ``<script type="application/json" id="desk-i18n">`` (``static/board/i18n.js`` reads it)."""
    return Markup(_js_catalogue(current_language()))


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    babel = Babel(app, locale_selector=_locale, timezone_selector=choose_timezone)
    # (a cached property of Flask-Babel's, replaced before its first use)
    babel.domain_instance = _Domain(domain=app.extensions["babel"].default_domain)
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]  # (i18n extension)
        # as Flask-Babel installs them, but reading ``translations``
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.jinja_env.globals["languages"] = LANGUAGES
    app.add_template_global(current_language, "current_language")
    app.add_template_global(js_catalogue, "js_catalogue")
