"""The desk speaks German and Vietnamese: complete catalogues, and every page in each language.

Three checks:

- ``scripts/i18n.py check``: every string the sources mark is in each language's catalogue,
  translated, not fuzzy, its placeholders intact, and each committed ``.mo`` matches its
  ``.po``. A new string not yet in every catalogue fails here (and so in CI).
- Every page (boards, the dial form with each of its messages, the call page, history,
  wallboard, audit, routing, dispositions, listen-in, settings, login, error pages) is
  rendered in ``de`` and ``vi``; none shows an English catalogue entry where the catalogue
  has a translation.
- The same pages under a *pseudo* German catalogue, whose every translation is the real one
  between ⟦ and ⟧: any word a page shows outside the brackets did not go through the
  catalogue at all (a string nobody marked), unless it is data (a name, a number, a
  provider's name) listed in ``DATA``.
"""

from __future__ import annotations

import importlib.util
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from desk.extensions import db
from desk.i18n import LANGUAGES, TRANSLATIONS, timezones
from desk.models import Alert, Call, Disposition, User
from desk.services.audit import record
from tests.conftest import add_user, base_config, csrf_from, login

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("desk_i18n_script", ROOT / "scripts" / "i18n.py")
assert _spec is not None and _spec.loader is not None
catalogues = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(catalogues)

NOW = datetime.now(UTC).replace(microsecond=0)


def test_every_marked_string_is_translated_in_every_catalogue() -> None:
    problems = catalogues.check()
    assert problems == [], "\n".join(problems[:40])


# -- the pages -----------------------------------------------------------------------------
def _seed(app: Flask) -> dict[str, int]:
    """Users, calls in every state, an alert, audit entries and dispositions."""
    ids = {
        "ann": add_user(app, "ann", extension="101", sip_peer="777ann@fpbx.de"),
        "bob": add_user(app, "bob", extension="102", sip_peer="777bob@fpbx.de",
                        presence="away"),
        "sue": add_user(app, "sue", role="supervisor", extension="100"),
        "max": add_user(app, "max", role="supervisor"),
    }
    with app.app_context():
        def call(ref: str, **fields: Any) -> int:
            values: dict[str, Any] = {"provider": "placetel", "provider_call_id": ref,
                                      "direction": "inbound", "from_number": "+4930123456",
                                      "to_number": "+4922155555", "started_at": NOW}
            values.update(fields)
            row = Call(**values)
            db.session.add(row)
            db.session.flush()
            return row.id

        ids["ringing"] = call("r-1", state="ringing", ringing_at=NOW, offered_to=[ids["ann"]])
        ids["talking"] = call("t-1", state="talking", agent_id=ids["ann"], answered_at=NOW,
                              answered_by="777ann@fpbx.de", recording_state="on")
        ids["dialling"] = call("d-1", state="dialling", direction="outbound",
                               agent_id=ids["bob"], provider="teleforge")
        ids["answered"] = call("a-1", state="ended", agent_id=ids["ann"], answered_at=NOW,
                               ended_at=NOW + timedelta(minutes=3), duration=180,
                               disposition="Sale", wrap_up_note="brochure",
                               wrapped_up_at=NOW + timedelta(minutes=4))
        ids["missed"] = call("m-1", state="ended", ended_at=NOW + timedelta(seconds=30),
                             end_cause="missed")
        ids["closed"] = call("c-1", state="ended", ended_at=NOW + timedelta(hours=1),
                             end_cause="no_end_event")
        db.session.add(Alert(provider="teleforge", kind="unreadable",
                             message="a notification could not be read"))
        db.session.add(Disposition(label="Sale", position=0))
        db.session.commit()
        record(db.session, user_id=ids["ann"], call_id=ids["answered"], action="hangup",
               outcome="ok", provider_answer={"status": "accepted"})
        record(db.session, user_id=ids["sue"], call_id=ids["talking"], action="record",
               outcome="refused", provider_answer="403 not allowed")
        db.session.commit()
    return ids


@pytest.fixture
def desk(tmp_path: Path) -> Any:
    app = create(tmp_path)
    yield app, _seed(app)
    db.dispose()


def create(tmp_path: Path, **extra: Any) -> Flask:
    from desk import create_app
    from desk.cli import upgrade_database

    # Teleforge at a closed port: the dial form checks what is typed before any dial goes out,
    # and nothing here gets that far.
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_TIMEZONE="Europe/Berlin",
                                 DESK_TELEFORGE_URL="http://127.0.0.1:9", **extra))
    upgrade_database(app)
    return app


def speak(app: Flask, user_id: int, language: str | None) -> None:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        user.language = language
        db.session.commit()


BAD_DIAL_FIELDS = {
    "callee": ["082 000 12*4", "\u0660\u0668\u0662\u0660\u0660\u0660\u0661\u0662\u0663\u0664",
               "+27 82", "082 000 12", "27 82 000", "9123456789"],
    "outbound_id": ["hello", "tvc_", "0820001234"],
    "reference": ["x" * 300, "bad ref!"],
    "agent": ["12", "999"],
}
"""Invented wrong input (edge cases, not provider payloads): one per message the dial form's
fields can show while typing (``DIAL_MESSAGES``); an empty form on submit shows the rest."""


def dial_messages() -> list[str]:
    """The msgid of every message the dial form can show under a field."""
    from desk.providers.teleforge import rules

    found = [value._args[0] for name, value in vars(rules).items()
             if name.startswith(("NUMBER_", "AGENT_", "OUTBOUND_", "REFERENCE_"))
             and hasattr(value, "_args")]
    found += [message._args[0] for *_, message in rules.NUMBER_LENGTHS]
    found.append("No agent has extension %(extension)s. Pick an agent from the list, or type a "
                 "phone number to ring first.")
    return found


def pages(client: FlaskClient, app: Flask, ids: dict[str, int]) -> list[tuple[str, str]]:
    """(what, html) of every page and message, as ``ann`` (agent) then ``sue`` (supervisor)."""
    seen: list[tuple[str, str]] = []

    def get(url: str, status: int = 200, **kwargs: Any) -> str:
        response = client.get(url, **kwargs)
        assert response.status_code == status, (url, response.status_code)
        html = response.get_data(as_text=True)
        seen.append((url, html))
        return html

    get("/login")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"name": "ann", "password": "wrong",
                                           "csrf_token": token})
    seen.append(("login: wrong password", response.get_data(as_text=True)))
    response = client.post("/login", data={"name": "ann", "password": "x"})
    assert response.status_code == 400
    seen.append(("login: no CSRF token", response.get_data(as_text=True)))
    get("/no-such-page", status=404)

    token = login(client, "ann")
    get("/")
    get(f"/calls/{ids['talking']}")
    get(f"/calls/{ids['answered']}")
    get(f"/calls/{ids['closed']}")
    get("/history")
    get("/history?outcome=missed&from=2026-13-40", status=400)
    get("/settings")
    get("/supervisor", status=403)
    get("/dial?number=0301234")
    for field, values in BAD_DIAL_FIELDS.items():
        for value in values:
            response = client.post(f"/dial/check?field={field}", data={field: value},
                                   headers={"X-CSRFToken": token})
            assert response.status_code == 200, (field, value)
            seen.append((f"dial check {field}={value!r}", response.get_data(as_text=True)))
    response = client.post("/dial", data={"callee": "", "csrf_token": token})
    seen.append(("dial: nothing typed", response.get_data(as_text=True)))
    response = client.post("/settings", data={"timezone": "Mars/Olympus", "csrf_token": token})
    assert response.status_code == 400
    seen.append(("settings: bad time zone", response.get_data(as_text=True)))
    client.post("/logout", data={"csrf_token": token})

    token = login(client, "max")  # a supervisor with no extension of their own
    response = client.post("/dial", data={"agent": "", "callee": "", "outbound_id": "",
                                          "reference": "", "csrf_token": token})
    seen.append(("dial: an empty form, as a supervisor", response.get_data(as_text=True)))
    client.post("/logout", data={"csrf_token": token})

    login(client, "sue")
    for url in ("/supervisor", "/wallboard", "/history", "/audit", "/routing",
                "/supervisor/dispositions", "/settings",
                f"/calls/{ids['dialling']}", f"/calls/{ids['missed']}"):
        get(url)
    return seen


HIDDEN = ("script", "style", "template", "code", "pre")


class _Text(HTMLParser):
    """The words a person reads: text outside <script>/<style>, and the attributes that
    browsers show or read aloud. Machine text a page quotes as it is (<code>, <pre>: an
    audit entry's request, a webhook's body) is not words to translate."""

    SHOWN = ("title", "aria-label", "placeholder", "alt", "aria-description")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self._hidden += 1
        for name, value in attrs:
            if name in self.SHOWN and value:
                self.parts.append(value)
            if tag == "input" and name == "value" and value and (
                    ("type", "submit") in attrs or ("type", "button") in attrs):
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self._hidden = max(0, self._hidden - 1)

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(data)


def shown(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.parts


def _catalogue(language: str) -> Any:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


@pytest.mark.parametrize("language", ["de", "vi"])
def test_every_page_speaks_the_language(desk: Any, language: str) -> None:
    """No text a page shows is an English catalogue entry that has a translation: the page
    asked the catalogue of ``language`` (the user's choice for ann, the browser's for sue)."""
    app, ids = desk
    english = {}
    for message in _catalogue(language):
        if message.id and isinstance(message.id, str) and message.string != message.id \
                and "%(" not in message.id and "<" not in message.id:
            english[message.id] = message.string
    speak(app, ids["ann"], language)
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = f"{language},en;q=0.5"
    untranslated = []
    seen = pages(client, app, ids)
    for what, html in seen:
        assert f'<html lang="{language}"' in html or "<html" not in html, what
        for text in shown(html):
            if text.strip() in english:
                untranslated.append((what, text.strip()))
    assert untranslated == []
    # Every message the dial form can show was shown, in this language.
    everything = " ".join(" ".join(shown(html)) for _, html in seen)
    catalogue = _catalogue(language)
    for msgid in dial_messages():
        translation = catalogue.get(msgid).string
        words = max(re.split(r"%\(\w+\)s", translation), key=len).strip()
        assert words and words in everything, (msgid, words)


# -- pseudo-translation: the strings nobody marked -------------------------------------------
OPEN, CLOSE = "⟦", "⟧"

DATA = {
    # People, numbers and values the seeded desk holds; provider and product names.
    "ann", "bob", "sue", "max", "Sale", "brochure", "Agent Desk", "Placetel", "placetel",
    "Stringee",
    "stringee", "Teleforge", "teleforge", "iotcomms", "mediaservice", "HubSpot",
    "777ann@fpbx.de", "777bob@fpbx.de", "Europe/Berlin", "UTC", "SIP", "CSV", "WebRTC",
    "a notification could not be read", "unreadable", "accepted", "status", "not allowed",
    # Keys on the keyboard, as printed on them (single letters are keys too, and pass).
    "Esc", "Enter",
    # The seeded calls' references at their provider.
    "r-1", "t-1", "d-1", "a-1", "m-1", "c-1",
    # An example address in a field's placeholder (a SIP URI reads the same in any language).
    "sip:you@pbx.example",
    # The languages' own names (the switch lists them as their speakers write them).
    *LANGUAGES.values(),
}
"""Words a page may show untranslated: data the test seeded, names and the language list."""

APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[^\W\d_][\w{APOSTROPHES}.-]*", re.UNICODE)


def _pseudo_translations(tmp_path: Path) -> Path:
    """A copy of the German catalogue with every translation between ⟦ and ⟧."""
    catalog = _catalogue("de")
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.string, tuple):
            message.string = tuple(f"{OPEN}{s}{CLOSE}" for s in message.string)
        else:
            message.string = f"{OPEN}{message.string}{CLOSE}"
    folder = tmp_path / "pseudo" / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.mo").open("wb") as handle:
        write_mo(handle, catalog)
    return tmp_path / "pseudo"


def outside_brackets(text: str, depth: int = 0) -> tuple[str, int]:
    """The characters of ``text`` not inside ⟦…⟧, given the depth it starts at."""
    out = []
    for char in text:
        if char == OPEN:
            depth += 1
        elif char == CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(char)
    return "".join(out), depth


ZONES = set(timezones())
_PHRASES = sorted((d for d in DATA if not d.isalnum()), key=len, reverse=True)


def unmarked_words(html: str) -> list[str]:
    words: list[str] = []
    depth = 0
    for text in shown(html):
        if text.strip() in ZONES:  # the settings page lists every time zone by its name
            continue
        rest, depth = outside_brackets(text, depth)
        for phrase in _PHRASES:
            rest = rest.replace(phrase, " ")
        for word in _WORD.findall(rest):
            word = word.strip(".-" + APOSTROPHES)
            if len(word) > 1 and word not in DATA:
                words.append(word)
    return words


def test_no_page_shows_a_string_that_skipped_the_catalogue(tmp_path: Path) -> None:
    app = create(tmp_path, BABEL_TRANSLATION_DIRECTORIES=str(_pseudo_translations(tmp_path)))
    try:
        ids = _seed(app)
        speak(app, ids["ann"], "de")
        client = app.test_client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
        found = {}
        for what, html in pages(client, app, ids):
            words = unmarked_words(html)
            if words:
                found[what] = sorted(set(words))
        assert found == {}
    finally:
        db.dispose()


def test_the_pseudo_check_finds_an_unmarked_string() -> None:
    """The check above can fail: a word outside the brackets is reported, data is not."""
    assert unmarked_words(f"<p>{OPEN}Anruf{CLOSE} from ann</p>") == ["from"]
    assert unmarked_words(f'<button title="Hang up">{OPEN}Auflegen{CLOSE}</button>') == [
        "Hang", "up"]
    assert unmarked_words(f"<p>{OPEN}<b>{OPEN}x{CLOSE}</b> y{CLOSE} 0301234 ann</p>") == []


# -- which language, which time zone -----------------------------------------------------------
def test_the_language_is_the_users_else_the_browsers_else_desk_language(tmp_path: Path) -> None:
    app = create(tmp_path, DESK_LANGUAGE="vi")
    try:
        ids = _seed(app)
        client = app.test_client()
        assert '<html lang="vi"' in client.get("/login").get_data(as_text=True)  # DESK_LANGUAGE
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr-FR,de;q=0.8,en;q=0.5"
        assert '<html lang="de"' in client.get("/login").get_data(as_text=True)  # the browser's
        login(client, "ann")
        speak(app, ids["ann"], "en")
        assert '<html lang="en"' in client.get("/").get_data(as_text=True)  # the user's own
    finally:
        db.dispose()


def test_the_header_switch_keeps_the_choice_and_returns_to_the_page(desk: Any) -> None:
    app, ids = desk
    client = app.test_client()
    token = login(client, "ann")
    response = client.post("/settings/language", data={
        "language": "de", "next": "/history?outcome=missed", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/history?outcome=missed"
    with app.app_context():
        assert db.session.get(User, ids["ann"]).language == "de"
    assert '<html lang="de"' in client.get("/").get_data(as_text=True)
    wrong = client.post("/settings/language", data={"language": "xx", "csrf_token": token})
    assert wrong.status_code == 400
    assert "de, en, vi" in wrong.get_data(as_text=True) or "en, de, vi" in wrong.get_data(
        as_text=True)
    away = client.post("/settings/language", data={
        "language": "vi", "next": "//evil.example/", "csrf_token": token})
    assert away.headers["Location"] == "/"  # never off the site


def test_a_users_time_zone_moves_every_time_they_read(desk: Any) -> None:
    """DESK_TIMEZONE is Europe/Berlin; ann picks Asia/Ho_Chi_Minh and reads the call's start
    six hours later; her choice "none" brings the call centre's back."""
    app, ids = desk
    client = app.test_client()
    token = login(client, "ann")
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M:%S")
    saigon = NOW.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M:%S")
    assert berlin in client.get(f"/calls/{ids['answered']}").get_data(as_text=True)
    saved = client.post("/settings", data={"language": "", "timezone": "Asia/Ho_Chi_Minh",
                                           "csrf_token": token}, follow_redirects=True)
    assert saved.status_code == 200 and "Your settings are saved." in saved.get_data(as_text=True)
    page = client.get(f"/calls/{ids['answered']}").get_data(as_text=True)
    assert saigon in page and "Asia/Ho_Chi_Minh" in page
    client.post("/settings", data={"language": "", "timezone": "", "csrf_token": token})
    with app.app_context():
        assert db.session.get(User, ids["ann"]).timezone is None
    bad = client.post("/settings", data={"timezone": "Mars/Olympus", "csrf_token": token})
    assert bad.status_code == 400 and "Mars/Olympus" in bad.get_data(as_text=True)
    assert 'aria-invalid="true"' in bad.get_data(as_text=True)


def test_the_api_answers_in_english_whatever_the_browser_asks(desk: Any) -> None:
    app, ids = desk
    client = app.test_client()
    login(client, "ann")
    speak(app, ids["ann"], "de")
    response = client.get("/api/v1/calls/999999", headers={"Accept-Language": "de"})
    assert response.status_code == 404
    assert "There is no call" in response.get_data(as_text=True)


def test_a_live_push_is_rendered_once_per_voice(desk: Any) -> None:
    """Boards of two languages get the same row, each in its own words."""
    from desk.live.render import render_voices

    app, ids = desk
    rendered = render_voices(app, {"calls": {ids["ringing"]}},
                             {"de Europe/Berlin": {"agent"}, "vi Asia/Ho_Chi_Minh": {"agent"},
                              "": {"supervisor"}})
    assert set(rendered) == {"de Europe/Berlin", "vi Asia/Ho_Chi_Minh", ""}
    de = "".join(html for _, html in rendered["de Europe/Berlin"])
    vi = "".join(html for _, html in rendered["vi Asia/Ho_Chi_Minh"])
    english = "".join(html for _, html in rendered[""])
    words_de = _catalogue("de").get("Ringing").string
    words_vi = _catalogue("vi").get("Ringing").string
    assert words_de in de and words_vi in vi and "Ringing" in english
    assert "Ringing" not in de and "Ringing" not in vi
