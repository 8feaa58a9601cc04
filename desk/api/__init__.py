"""The JSON API under ``/api/v1``, described by ``/api/v1/openapi.json``.

Authenticated by the session (writes then need the CSRF token in ``X-CSRFToken``) or by
``Authorization: Bearer <token>`` (no CSRF: no cookie is involved). Errors are JSON.
Every module in this package is a group of routes with its ``PATHS`` (its part of the
OpenAPI document); they are imported here, so adding a module adds its routes. ``blueprint``
(the blueprint and its authentication) and ``params`` (query parameters) are shared by them.
"""

import importlib
import pkgutil
from types import ModuleType

from desk.api.blueprint import bp

MODULES: list[ModuleType] = [
    importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
    if info.name not in ("blueprint", "params")
]

__all__ = ["MODULES", "bp"]
