"""The provider registry: every telephony provider the desk speaks, in one place.

Each provider lives in its own package beside this file and exports a ``Provider``
(``desk.providers.base``). ``REGISTRY`` maps names to them; settings, the webhook routes,
the call buttons, the simulators and the background consumers are all read from it, so
adding a provider means adding its folder and one line to ``BUILT_IN``. ``register_webhooks(app)``
mounts each provider's webhook blueprint under ``/webhooks/<name>``; ``start(app)`` builds its
clients and consumers.
"""

from __future__ import annotations

import importlib

from flask import Flask

from desk.providers.base import Provider

BUILT_IN = ("placetel", "mediaservice", "stringee", "teleforge")

REGISTRY: dict[str, Provider] = {}


def add(provider: Provider) -> Provider:
    """Make ``provider`` known (a later app built in this process serves it)."""
    REGISTRY[provider.name] = provider
    return provider


def remove(name: str) -> None:
    REGISTRY.pop(name, None)


def load(package: str) -> Provider:
    """The ``PROVIDER`` a package exports, added to the registry."""
    provider = importlib.import_module(package).PROVIDER
    if not isinstance(provider, Provider):
        raise TypeError(f"{package}.PROVIDER is not a desk.providers.base.Provider")
    return add(provider)


def get(name: str | None) -> Provider | None:
    return REGISTRY.get(name or "")


def capabilities(name: str | None) -> frozenset[str]:
    provider = get(name)
    return provider.capabilities if provider else frozenset()


def register_webhooks(app: Flask) -> None:
    """Mount every provider's webhook blueprint under ``/webhooks/<name>`` (providers
    authenticate with credentials, not cookies: no CSRF)."""
    from desk.extensions import csrf

    for provider in REGISTRY.values():
        blueprint = provider.blueprint()
        if blueprint is not None:
            csrf.exempt(blueprint)
            app.register_blueprint(blueprint, url_prefix=f"/webhooks/{provider.name}")


def start(app: Flask) -> None:
    """Build each provider's clients and consumers (``Provider.start``)."""
    for provider in REGISTRY.values():
        provider.start_with(app)


for _name in BUILT_IN:
    load(f"{__name__}.{_name}")
