"""Browser-facing security headers on every response: what a page may load, sniff, leak, cache.

**Content-Security-Policy.** The desk's pages run only the desk's own scripts and styles
(``static/``): no inline ``<script>``, no ``style=`` attributes, no ``<style>`` elements, no
``eval``. A script injected into a page (a caller name that slipped past escaping, a
hostile CRM message) therefore cannot run. The policy:

* ``default-src 'self'``; ``script-src 'self'``; ``style-src 'self'`` (htmx would add a
  ``<style>`` for its request indicators: ``templates/shared/base.html`` turns that off with
  its ``htmx-config`` meta tag, and ``static/board/desk.css`` carries those rules);
* ``img-src 'self' data:``;
* ``media-src 'self' https:``: a recording plays from ``/calls/<id>/recording``, which
  redirects to the provider's short-lived download address (its host is the provider's
  storage, not known in advance); media cannot run code. In demo mode the simulated
  mediaservice's address is added: it is this server's loopback address, which the
  browser may know by another name (``localhost``);
* ``connect-src 'self'`` plus this host's own websocket address: CSP Level 3's ``'self'``
  covers same-host ``ws:``/``wss:`` (Chromium since 71, Safari since 16); the explicit
  source keeps ``/ws`` working on older Safari, and names one host, never ``ws:`` at large;
  with the browser softphone, also the origin of ``DESK_TELEFORGE_SIP_WS_URL`` (Teleforge's
  SIP websocket, checked by ``desk.settings`` to be a ``ws:``/``wss:`` host and port);
* ``base-uri 'self'``, ``form-action 'self'``, ``object-src 'none'``.

Framing is the other half and stays where it is decided, in ``desk.web.embed``
(``frame-ancestors`` from ``DESK_EMBED_ORIGINS``). The two are sent as two
``Content-Security-Policy`` headers; a browser enforces every policy it is given, so a
page must satisfy both: the framing policy first (as ``embed`` has always sent it), this
one second. Nothing here can loosen ``frame-ancestors``, because this policy has none.

**The rest.** ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``
everywhere (a call page's address never reaches another site). ``Cache-Control: no-store``
on everything but static files: boards, call pages, history and its CSV, the audit log,
the wallboard and API answers all carry call data, and a shared or back-button cache must
not keep it. A view that set its own ``Cache-Control`` keeps it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

RESOURCE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' https:{media}; connect-src 'self'{websocket}; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)
# What a Host header may look like to be named in the policy: a name or address and port.
# Anything else (a header no browser sends) only loses the older-Safari websocket source.
_HOST = re.compile(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def resource_policy() -> str:
    """This request's resource policy (its websocket source names the host asked for)."""
    host = request.host
    websocket = ""
    if _HOST.fullmatch(host):
        websocket = f" {'wss' if request.is_secure else 'ws'}://{host}"
    softphone = current_app.config.get("DESK_TELEFORGE_SIP_WS_URL") or ""
    if softphone:
        # The browser softphone's SIP websocket (desk.web.softphone): that one origin only.
        parts = urlsplit(softphone)
        websocket += f" {parts.scheme}://{parts.netloc}"
    return RESOURCE_POLICY.format(websocket=websocket, media=_simulated_recordings())


def _simulated_recordings() -> str:
    """The demo simulators' origin (they serve the simulated recordings), once started."""
    simulators = current_app.extensions.get("simulator")
    parts = urlsplit(getattr(simulators, "base_url", "") or "")
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(parts.netloc):
        return ""
    return f" {parts.scheme}://{parts.netloc}"


def _static(app: Flask) -> bool:
    return request.endpoint == "static" or request.path.startswith(
        (app.static_url_path or "/static") + "/"
    )


def register_security(app: Flask) -> None:
    """Add the headers to every response.

    Registered before ``desk.web.embed``'s framing hook on purpose: Flask runs
    ``after_request`` hooks in reverse order, so this one runs after it and adds its
    policy as a second header instead of being merged into the framing one.
    """

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.add("Content-Security-Policy", resource_policy())
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if not _static(app) and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response
