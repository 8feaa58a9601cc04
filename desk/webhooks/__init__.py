"""Webhook endpoints that providers call; errors are answered as JSON (see desk.errors).

One module per provider; every module in this package is imported here, so adding a
provider's webhook module adds its routes. CSRF does not apply (providers authenticate
with credentials, not cookies).
"""

import importlib
import pkgutil

from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    importlib.import_module(f"{__name__}.{_info.name}")
