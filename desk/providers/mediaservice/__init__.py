"""iotcomms.io mediaservice: JSON callbacks in, REST call control out.

``parse`` (pure) reads callbacks, ``answers`` (pure) builds the replies the service waits
for, ``routing`` decides them from the database, ``signature`` checks who sent a callback,
``client`` calls the REST API, ``actions`` puts it behind the call buttons and ``views``
serves ``POST /webhooks/mediaservice/<callback>``; ``simulator`` stands in for the service.
"""

from __future__ import annotations

from typing import Any

from desk.providers.base import Provider


def _check(config: dict[str, Any]) -> None:
    """Cross-setting checks; ``DESK_MEDIASERVICE_SITE_URLS`` becomes a tuple of normalised
    base URLs (``client.allowed_site_base_url`` compares against it) and
    ``DESK_MEDIASERVICE_STORAGE_HOSTS`` a tuple of host names (``client.storage_hosts``)."""
    from desk.providers.mediaservice.client import (
        API_FAMILIES,
        normalise_base_url,
        normalise_host,
    )
    from desk.settings import SettingsError

    if config["DESK_MEDIASERVICE_URL"] and not config["DESK_MEDIASERVICE_DOMAIN"]:
        raise SettingsError(
            "DESK_MEDIASERVICE_DOMAIN is required with DESK_MEDIASERVICE_URL "
            "(it looks like customer47.prod-eu-north-1.iotcomms.io)."
        )
    given = config["DESK_MEDIASERVICE_API"]
    api = str(given or "base").strip().lower()
    if api not in API_FAMILIES:
        raise SettingsError(
            f"DESK_MEDIASERVICE_API must be {' or '.join(API_FAMILIES)} (which endpoints the "
            f"account uses: hangupcall or hangupcalljwt, ...), not {given!r}"
        )
    config["DESK_MEDIASERVICE_API"] = api
    raw = config["DESK_MEDIASERVICE_SITE_URLS"]
    items = raw.split(",") if isinstance(raw, str) else list(raw or ())
    sites = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            sites.append(normalise_base_url(item))
        except ValueError:
            raise SettingsError(
                "DESK_MEDIASERVICE_SITE_URLS takes hybrid site API base URLs like "
                f"https://site-a.example.com/mediaservice, comma-separated, not {item!r}"
            ) from None
    config["DESK_MEDIASERVICE_SITE_URLS"] = tuple(sites)
    raw = config["DESK_MEDIASERVICE_STORAGE_HOSTS"]
    items = raw.split(",") if isinstance(raw, str) else list(raw or ())
    hosts = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            hosts.append(normalise_host(item))
        except ValueError:
            raise SettingsError(
                "DESK_MEDIASERVICE_STORAGE_HOSTS takes host names like files.example.com "
                f"(each also allows its subdomains), comma-separated, not {item!r}"
            ) from None
    config["DESK_MEDIASERVICE_STORAGE_HOSTS"] = tuple(dict.fromkeys(hosts))


PROVIDER = Provider(
    name="mediaservice",
    title="iotcomms.io mediaservice",
    settings={
        "DESK_MEDIASERVICE_URL": ("", "str"),
        "DESK_MEDIASERVICE_DOMAIN": ("", "str"),
        "DESK_MEDIASERVICE_KEY_FILE": ("", "str"),
        "DESK_MEDIASERVICE_CALLBACK_KEY_FILE": ("", "str"),
        # "base" (hangupcall, ...) or "jwt" (hangupcalljwt, ... where the page lists one).
        "DESK_MEDIASERVICE_API": ("base", "str"),
        # Hybrid sites whose siteBaseUrl the desk may send API calls to; empty: never.
        "DESK_MEDIASERVICE_SITE_URLS": ("", "str"),
        # Oldest callback token accepted (its iat), seconds; each token is accepted once.
        "DESK_MEDIASERVICE_TOKEN_MAX_AGE": ("300", "int:1"),
        # Hosts (and their subdomains) a recording's playback URL may point to; empty: the
        # hosts of DESK_MEDIASERVICE_URL and DESK_MEDIASERVICE_SITE_URLS.
        "DESK_MEDIASERVICE_STORAGE_HOSTS": ("", "str"),
    },
    configured_by=("DESK_MEDIASERVICE_URL",),
    webhooks=("POST /webhooks/mediaservice/<callback>",),
    # "pause": the API only starts and stops recordings, so a pause is a stoprecording and a
    # resume a startrecording under the next segment's file name (desk.services.recording).
    capabilities=frozenset({"hangup", "drop", "split", "record", "pause"}),
    views="desk.providers.mediaservice.views",
    actions="desk.providers.mediaservice.actions",
    check_settings=_check,
    simulator="desk.providers.mediaservice.simulator",
)
