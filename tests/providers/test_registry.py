"""desk.providers: what each provider declares is what the desk serves, and a provider added
from outside the tree (its own package, ``load``) is served end to end without other edits.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from desk import create_app, providers
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Call, Delivery
from desk.providers import BUILT_IN, REGISTRY
from desk.providers.base import CAPABILITIES, Provider
from tests.conftest import add_user, base_config, login

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
WEBHOOK_TOKEN = "fake-t0ken"


def env_example() -> dict[str, str]:
    """The settings ``.env.example`` lists, with the value it shows."""
    found = re.findall(r"^(DESK_[A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return dict(found)


def declared_routes(name: str) -> set[str]:
    return set(REGISTRY[name].webhooks)


def served_routes(app: Flask, name: str) -> set[str]:
    """Every "METHOD /path" the app serves under ``/webhooks/<name>``, converters dropped
    (``<path:callback>`` is declared as ``<callback>``)."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule == f"/webhooks/{name}" or rule.rule.startswith(f"/webhooks/{name}/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"<\1>", rule.rule)
            routes |= {f"{method} {path}" for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


# -- the built-in providers -------------------------------------------------------------------


def test_the_registry_holds_the_built_in_providers_under_their_own_names() -> None:
    assert set(BUILT_IN) == {"placetel", "mediaservice", "stringee", "teleforge"}
    assert set(BUILT_IN) <= set(REGISTRY)
    for name in BUILT_IN:
        provider = REGISTRY[name]
        assert isinstance(provider, Provider)
        assert provider.name == name
        assert provider.title


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_setting_is_prefixed_listed_in_env_example_with_its_default(name: str) -> None:
    provider = REGISTRY[name]
    listed = env_example()
    assert provider.settings, f"{name} declares no settings"
    for setting, (default, kind) in provider.settings.items():
        assert setting.startswith("DESK_"), setting
        assert setting in listed, f"{setting} ({name}) is missing from .env.example"
        assert listed[setting] == str(default), f"{setting}: .env.example shows another default"
        assert kind in ("str", "flag", "float") or kind.startswith("int:"), (setting, kind)
    assert set(provider.configured_by) <= set(provider.settings)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_setting_reaches_the_app_config(name: str, app: Flask) -> None:
    for setting in REGISTRY[name].settings:
        assert setting in app.config, setting


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_declared_webhook_routes_are_the_ones_served(name: str, app: Flask) -> None:
    declared = declared_routes(name)
    for route in declared:
        method, _, path = route.partition(" ")
        assert method in ("GET", "POST"), route
        assert path == f"/webhooks/{name}" or path.startswith(f"/webhooks/{name}/"), route
    # Both ways: README's list of routes comes from these declarations.
    assert served_routes(app, name) == declared


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_declared_route_is_matched_to_the_providers_own_view(name: str, app: Flask) -> None:
    urls = app.url_map.bind("desk.example")
    for route in declared_routes(name):
        method, _, path = route.partition(" ")
        concrete = re.sub(r"<[^>]+>", "sample", path)
        endpoint, _args = urls.match(concrete, method=method)
        assert endpoint.startswith(f"{name}_webhooks."), (route, endpoint)


def test_capabilities_are_known_buttons_and_mediaservice_has_them_all() -> None:
    for name in BUILT_IN:
        assert REGISTRY[name].capabilities <= CAPABILITIES, name
    every = {"hangup", "drop", "split", "record", "pause"}
    assert REGISTRY["mediaservice"].capabilities == every == CAPABILITIES
    assert providers.capabilities("mediaservice") == every
    assert providers.capabilities("placetel") == frozenset()
    assert providers.capabilities("nonesuch") == frozenset()
    assert providers.capabilities(None) == frozenset()


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_module_a_provider_names_can_be_imported(name: str) -> None:
    provider = REGISTRY[name]
    for reference in (provider.views, provider.actions, provider.simulator):
        if reference is not None:
            importlib.import_module(reference)
    if provider.start is not None:
        module, _, function = provider.start.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), provider.start


def test_a_provider_with_an_unknown_button_or_an_unprefixed_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown capabilities"):
        Provider(name="x", title="X", settings={}, capabilities=frozenset({"transfer"}))
    with pytest.raises(ValueError, match="lacks the DESK_ prefix"):
        Provider(name="x", title="X", settings={"X_TOKEN": ("", "str")})


def test_load_refuses_a_package_whose_provider_is_not_a_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "notaprovider").mkdir()
    (tmp_path / "notaprovider" / "__init__.py").write_text('PROVIDER = "placetel"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(TypeError, match=r"not a desk\.providers\.base\.Provider"):
            providers.load("notaprovider")
        assert "notaprovider" not in REGISTRY
    finally:
        sys.modules.pop("notaprovider", None)


# -- a provider from outside the tree ---------------------------------------------------------

FAKE_INIT = '''\
"""A provider that exists only for the registry's test."""

from desk.providers.base import Provider

PROVIDER = Provider(
    name="fakeprov",
    title="Fake provider",
    settings={"DESK_FAKEPROV_TOKEN": ("", "str")},
    configured_by=(),
    webhooks=("POST /webhooks/fakeprov",),
    views="fakeprov.views",
)
'''

FAKE_VIEWS = '''\
"""Fake provider webhooks: a JSON body {"call_id", "from"} rings a call."""

from datetime import UTC, datetime

from flask import current_app, request

from desk.domain.events import BadPayload, CallEvent, Parsed
from desk.providers.webhook import apply, blueprint, parse_or_reject, require

bp = blueprint("fakeprov")


def parse() -> Parsed:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("call_id"), str):
        raise BadPayload("expected a JSON object with a call_id")
    call_id = body["call_id"]
    event = CallEvent(provider="fakeprov", provider_call_id=call_id, kind="ringing",
                      at=datetime.now(UTC), direction="inbound", from_number=body.get("from"),
                      to_number="100")
    return Parsed(kind="ringing", provider_call_id=call_id,
                  dedupe_key=f"fakeprov:{call_id}:ringing", events=(event,))


@bp.post("")
def notify():
    require(request.headers.get("X-Token") == current_app.config["DESK_FAKEPROV_TOKEN"],
            "Send DESK_FAKEPROV_TOKEN in the X-Token header.")
    return apply("fakeprov", parse_or_reject("fakeprov", parse, kind=lambda: "ringing"))
'''


@pytest.fixture
def fakeprov(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    """The ``fakeprov`` package on ``sys.path`` and in the registry; gone afterwards, so no
    other test's app serves it."""
    package = tmp_path / "packages" / "fakeprov"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_INIT)
    (package / "views.py").write_text(FAKE_VIEWS)
    monkeypatch.syspath_prepend(str(package.parent))
    try:
        yield providers.load("fakeprov")
    finally:
        providers.remove("fakeprov")
        for module in [m for m in sys.modules if m == "fakeprov" or m.startswith("fakeprov.")]:
            del sys.modules[module]


@pytest.fixture
def fake_app(fakeprov: Provider, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'fake.sqlite3'}",
                                 DESK_FAKEPROV_TOKEN=WEBHOOK_TOKEN))
    upgrade_database(app)
    yield app
    db.dispose()


def test_a_loaded_provider_is_in_the_registry_until_removed(fakeprov: Provider) -> None:
    assert REGISTRY["fakeprov"] is fakeprov
    assert providers.get("fakeprov") is fakeprov
    providers.remove("fakeprov")
    assert providers.get("fakeprov") is None
    providers.remove("fakeprov")  # removing twice is harmless


def test_its_setting_reaches_the_config_and_its_route_is_served(fake_app: Flask) -> None:
    assert fake_app.config["DESK_FAKEPROV_TOKEN"] == WEBHOOK_TOKEN
    assert served_routes(fake_app, "fakeprov") == {"POST /webhooks/fakeprov"}


def test_its_setting_defaults_when_not_given(fakeprov: Provider, tmp_path: Path) -> None:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'default.sqlite3'}"))
    try:
        assert app.config["DESK_FAKEPROV_TOKEN"] == ""
    finally:
        db.dispose()


def test_its_webhook_rings_a_call_that_the_board_shows(fake_app: Flask) -> None:
    client = fake_app.test_client()
    response = client.post("/webhooks/fakeprov", json={"call_id": "fp-1", "from": "0221555"},
                           headers={"X-Token": WEBHOOK_TOKEN})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "applied"

    with fake_app.app_context():
        call = db.session.scalars(select(Call).where(Call.provider == "fakeprov")).one()
        assert (call.provider_call_id, call.state, call.from_number) == ("fp-1", "ringing",
                                                                         "0221555")
        delivery = db.session.scalars(select(Delivery).where(Delivery.provider == "fakeprov")).one()
        assert (delivery.status, delivery.call_id) == ("applied", call.id)
    assert response.get_json()["calls"] == [call.id]

    # The same delivery again is a duplicate and changes nothing.
    again = client.post("/webhooks/fakeprov", json={"call_id": "fp-1", "from": "0221555"},
                        headers={"X-Token": WEBHOOK_TOKEN})
    assert again.get_json()["status"] == "duplicate"

    add_user(fake_app, "ann", extension="101")
    board = fake_app.test_client()
    login(board, "ann")
    page = board.get("/").get_data(as_text=True)
    assert "0221555" in page
    assert "fakeprov · inbound" in page


def test_a_body_it_cannot_parse_is_answered_400_and_kept_as_rejected(fake_app: Flask) -> None:
    client = fake_app.test_client()
    response = client.post("/webhooks/fakeprov", data="call_id=fp-2",
                           content_type="application/x-www-form-urlencoded",
                           headers={"X-Token": WEBHOOK_TOKEN})
    assert response.status_code == 400
    assert response.get_json()["message"] == "expected a JSON object with a call_id"

    with fake_app.app_context():
        delivery = db.session.scalars(select(Delivery).where(Delivery.provider == "fakeprov")).one()
        assert delivery.status == "rejected"
        assert delivery.error == "expected a JSON object with a call_id"
        assert delivery.kind == "ringing"
        assert delivery.payload == "call_id=fp-2"
        assert delivery.content_type == "application/x-www-form-urlencoded"
        assert db.session.scalars(select(Call)).all() == []


def test_a_delivery_without_its_token_is_refused_and_changes_nothing(fake_app: Flask) -> None:
    response = fake_app.test_client().post("/webhooks/fakeprov", json={"call_id": "fp-3"},
                                           headers={"X-Token": "wrong"})
    assert response.status_code == 401
    assert "DESK_FAKEPROV_TOKEN" in response.get_json()["message"]
    with fake_app.app_context():
        assert db.session.scalars(select(Call)).all() == []


def test_once_removed_the_next_app_no_longer_serves_it(fakeprov: Provider, tmp_path: Path) -> None:
    providers.remove("fakeprov")
    app = create_app(base_config(f"sqlite:///{tmp_path / 'after.sqlite3'}"))
    try:
        assert served_routes(app, "fakeprov") == set()
        assert "DESK_FAKEPROV_TOKEN" not in app.config
    finally:
        db.dispose()
