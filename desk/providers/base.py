"""What a provider is to the desk: the ``Provider`` description every provider package exports.

A provider package (``desk/providers/<name>/``) holds everything the desk knows about one
telephony provider: its pure parser and answers, its outbound client, its webhook views and
any background consumer. Its ``__init__`` exports ``PROVIDER``, a ``Provider`` that tells the
rest of the desk, without importing the provider's internals, which settings it reads, which
webhook routes it serves, which call buttons it supports and what to start with the app.
Module references are dotted strings, imported when the app is built, so importing the
registry never imports Flask views (and never an import cycle).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask

Setting = tuple[Any, str]
"""A setting's default and kind: "str", "flag", "float" or "int:<minimum>"."""

CAPABILITIES = frozenset({"hangup", "drop", "split", "record", "pause"})
"""Every call button the desk knows; a provider supports a subset ("pause": pause and resume
a recording, with "record")."""


@dataclass(frozen=True)
class Provider:
    """One telephony provider, as the registry (``desk.providers``) knows it."""

    name: str
    """Short name: the ``Call.provider`` value and the URL segment under ``/webhooks/``."""
    title: str
    settings: Mapping[str, Setting]
    """The ``DESK_`` settings this provider reads, with their defaults and kinds."""
    configured_by: tuple[str, ...] = ()
    """Any of these settings set means the provider is configured (and the simulators are off)."""
    webhooks: tuple[str, ...] = ()
    """The routes it serves, as "METHOD /path", for README and the registry's test."""
    capabilities: frozenset[str] = frozenset()
    """Call buttons it supports (a subset of ``CAPABILITIES``)."""
    views: str | None = None
    """Module whose ``bp`` blueprint holds the webhook routes."""
    actions: str | None = None
    """Module implementing ``capabilities`` (see ``desk.services.actions``)."""
    check_settings: Callable[[dict[str, Any]], None] | None = None
    """Cross-setting checks and conversions; raises ``SettingsError`` with a fix."""
    start: str | None = None
    """"module:function" called with the app once it is built (clients, consumers)."""
    simulator: str | None = None
    """Module whose ``bp`` blueprint simulates this provider in demo mode."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise ValueError(f"{self.name}: unknown capabilities {sorted(unknown)}")
        for name in self.settings:
            if not name.startswith("DESK_"):
                raise ValueError(f"{self.name}: setting {name} lacks the DESK_ prefix")

    def blueprint(self) -> Blueprint | None:
        """The webhook blueprint (``bp`` of ``views``), imported now."""
        return _attribute(self.views, "bp") if self.views else None

    def simulator_blueprint(self) -> Blueprint | None:
        return _attribute(self.simulator, "bp") if self.simulator else None

    def actions_module(self) -> Any:
        return importlib.import_module(self.actions) if self.actions else None

    def start_with(self, app: Flask) -> None:
        if self.start:
            module, _, function = self.start.partition(":")
            _attribute(module, function)(app)


def _attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)
