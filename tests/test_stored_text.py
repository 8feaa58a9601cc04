"""The template filter ``stored_text``: every sentence the desk stores in English
(``Call.action_error``) is shown in the reader's language, with its values; any other text
as it came.

The sentences are the ones the code that says them defines (``desk.services.sweeper``,
``desk.providers.mediaservice.client``, ``desk.providers.teleforge.client``,
``desk.web.softphone``); the German expected here is read from the compiled catalogue
itself, not through the desk.
"""

from __future__ import annotations

import dataclasses
import gettext as stdlib_gettext
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

import desk
from desk import create_app
from desk.extensions import db
from desk.i18n import speaking
from desk.providers.mediaservice import client as mediaservice
from desk.services.sweeper import _stored, stored_text
from tests.conftest import base_config

TEMPLATES = [text for text, _ in _stored().sentences]
SAMPLES = {  # a value for each placeholder, none of them one of the desk's own words
    "seconds": "7",
    "status": "599",
    "action": "frobnicate",
    "reason": "sample reason 42",
    "answer": "'<html>sample</html>'",
    "url": "http://pbx.example.test:8080",
    "port": "8080",
    "detail": "callee: sample detail",
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    path = tmp_path_factory.mktemp("stored") / "desk.sqlite3"
    app = create_app(base_config(f"sqlite:///{path}"))
    yield app
    db.dispose()


@pytest.fixture(scope="module")
def german() -> stdlib_gettext.GNUTranslations:
    translations = stdlib_gettext.translation(
        "messages", Path(desk.__file__).parent / "translations", languages=["de"])
    assert isinstance(translations, stdlib_gettext.GNUTranslations)
    return translations


def _values(template: str) -> dict[str, str]:
    names = _PLACEHOLDER.findall(template)
    assert set(names) <= set(SAMPLES), f"no sample value for {set(names) - set(SAMPLES)}"
    return {name: SAMPLES[name] for name in names}


def test_there_are_stored_sentences_from_each_place_that_says_them() -> None:
    from desk.providers.teleforge import client as teleforge
    from desk.services import sweeper
    from desk.web import softphone

    for text in (*sweeper.NOT_CONFIRMED.values(), sweeper.NOT_CONFIRMED_OTHER,
                 *mediaservice.MESSAGES, *teleforge.MESSAGES, *softphone.MESSAGES):
        assert text in TEMPLATES


def test_each_request_says_every_way_it_can_fail() -> None:
    for sentences in mediaservice.REQUESTS:
        assert len(sentences.all()) == len(dataclasses.fields(sentences))
        assert len(set(sentences.all())) == len(sentences.all())


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda text: text[:60])
def test_a_stored_sentence_is_shown_in_german(
        app: Flask, german: stdlib_gettext.GNUTranslations, template: str) -> None:
    values = _values(template)
    english = template % values
    translated = german._catalog.get(template)  # type: ignore[attr-defined]
    assert translated and translated != template, f"the German catalogue lacks {template!r}"
    with app.test_request_context(), speaking("de Europe/Berlin"):
        assert stored_text(english) == translated % values


@pytest.mark.parametrize("reason", mediaservice.REFUSAL_REASONS, ids=lambda text: text[:30])
def test_the_call_services_own_fallback_reason_is_shown_in_german_too(
        app: Flask, german: stdlib_gettext.GNUTranslations, reason: str) -> None:
    english = mediaservice.HANG_UP.refused % {"reason": reason}
    expected = german.gettext(mediaservice.HANG_UP.refused) % {"reason": german.gettext(reason)}
    with app.test_request_context(), speaking("de Europe/Berlin"):
        assert stored_text(english) == expected
    assert "Telefoniedienst" in expected and german.gettext(reason) != reason


@pytest.mark.parametrize("text", [
    "Teleforge says: trunk 3 is down",
    "The call service refused to hang up the call",  # the sentence without its end
    "the provider did not confirm",
])
def test_any_other_text_comes_back_as_it_came(app: Flask, text: str) -> None:
    with app.test_request_context(), speaking("de Europe/Berlin"):
        assert stored_text(text) == text


def test_nothing_stored_shows_nothing(app: Flask) -> None:
    with app.test_request_context(), speaking("de Europe/Berlin"):
        assert stored_text(None) == ""
        assert stored_text("") == ""
