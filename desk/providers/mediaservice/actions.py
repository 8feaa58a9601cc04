"""The mediaservice behind the call buttons: which REST call each action is, and with what.

``desk.services.actions`` checks who may act and in which state, claims the call and
records the answer; this module knows what the mediaservice needs for each request — the
replyId its callAnswered callback carried, the connection and participant ids, the
recording's file name — and builds the client from the settings mapping it is given.
Client errors become ``ProviderFailure`` so the desk reads every provider's answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from desk.models import Call
from desk.providers.mediaservice.client import (
    MediaserviceClient,
    ProviderError,
    allowed_site_base_url,
    playback_url_allowed,
    storage_hosts,
)
from desk.providers.mediaservice.routing import recording_file_name
from desk.services.actions import ActionRefused, NotPossible, ProviderFailure, Request

log = logging.getLogger(__name__)


def controllable(call: Call) -> bool:
    """The mediaservice acts on a call through the replyId of its callAnswered callback."""
    return bool((call.provider_facts or {}).get("reply_id"))


@cache
def _private_key(path: str) -> str:
    return Path(path).read_text()


def client(config: Mapping[str, Any], call: Call | None = None) -> MediaserviceClient:
    """A client for ``call``'s hybrid site, or the configured ``DESK_MEDIASERVICE_URL``.

    A callback's ``siteBaseUrl`` is followed only when it is in
    ``DESK_MEDIASERVICE_SITE_URLS`` (checked again here: the list may have changed since the
    callback was kept); any other would receive the desk's signed token. The endpoint family
    is ``DESK_MEDIASERVICE_API``.
    """
    if not config["DESK_MEDIASERVICE_URL"] or not config["DESK_MEDIASERVICE_KEY_FILE"]:
        raise ActionRefused(
            "The mediaservice is not configured (DESK_MEDIASERVICE_URL and "
            "DESK_MEDIASERVICE_KEY_FILE).", status=503,
        )
    site = (call.provider_facts or {}).get("site_base_url") if call else None
    base = allowed_site_base_url(site, config.get("DESK_MEDIASERVICE_SITE_URLS", ()))
    if site and base is None:
        log.warning("call %s names siteBaseUrl %r, which is not in DESK_MEDIASERVICE_SITE_URLS:"
                    " using DESK_MEDIASERVICE_URL", call.id if call else "?", str(site)[:200])
    return MediaserviceClient(
        base or config["DESK_MEDIASERVICE_URL"], config["DESK_MEDIASERVICE_DOMAIN"],
        _private_key(config["DESK_MEDIASERVICE_KEY_FILE"]),
        timeout=config["DESK_PROVIDER_TIMEOUT"],
        api=config.get("DESK_MEDIASERVICE_API", "base"),
    )


def _sending(ask: Callable[[], Any]) -> Callable[[], Any]:
    """``ask`` with the client's ``ProviderError`` told in the desk's terms."""
    def send() -> Any:
        try:
            return ask()
        except ProviderError as exc:
            raise ProviderFailure(str(exc), kind=exc.kind, answer=exc.answer) from exc
    return send


def _reply_id(call: Call) -> Any:
    reply_id = (call.provider_facts or {}).get("reply_id")
    if not reply_id:
        raise NotPossible("The provider has not connected this call yet (no replyId); try "
                          "again once it is answered.")
    return reply_id


def _connection_id(call: Call) -> Any:
    return (call.provider_facts or {}).get("connection_id")


def hangup(call: Call, config: Mapping[str, Any]) -> Request:
    """``hangupcall``: busy if unanswered, else the whole call ends."""
    reply_id = _reply_id(call)
    ms = client(config, call)
    return Request(_sending(lambda: ms.hangupcall(reply_id)), detail={"replyId": "…"})


def drop(call: Call, party: str, config: Mapping[str, Any]) -> Request:
    """``hangupparticipant``: the caller's leg, or the agent's."""
    participant = call.caller_participant_id if party == "caller" else call.callee_participant_id
    session_id = (call.provider_facts or {}).get("session_id") or call.provider_call_id
    if not participant:
        raise NotPossible(f"The provider has not named the {party}'s leg of this call; hang "
                          "up the whole call instead.")
    reply_id = _reply_id(call)
    ms = client(config, call)
    return Request(_sending(lambda: ms.hangupparticipant(participant, reply_id, session_id)),
                   detail={"participantId": participant})


def split(call: Call, target: str | None, config: Mapping[str, Any]) -> Request:
    """``splitconnection``; where the caller goes next is answered to the callEvents that
    follow (``routing``), from the ``transfer_to`` the desk keeps on the call."""
    reply_id = _reply_id(call)
    connection_id = _connection_id(call)
    ms = client(config, call)
    return Request(_sending(lambda: ms.splitconnection(reply_id, connection_id)))


def start_recording(call: Call, config: Mapping[str, Any], part: int = 1) -> Request:
    """``startrecording`` under a file name the desk chooses: segment ``part`` of the
    call's recording. The first one's name is kept on the call; a resume (``part`` > 1)
    records into the next file, since the API has no pause (OpenAPI page, sections
    ``/{domain}/startrecording`` and ``/{domain}/stoprecording``: a stop uploads the file,
    a start names a new one)."""
    reply_id = _reply_id(call)
    connection_id = _connection_id(call)
    name = recording_file_name(call, part)
    ms = client(config, call)
    return Request(_sending(lambda: ms.startrecording(name, reply_id, connection_id)),
                   detail={"recordingFileName": name},
                   values={"recording_file_name": name} if part == 1 else {})


def stop_recording(call: Call, config: Mapping[str, Any]) -> Request:
    """``stoprecording`` (a stop, or a pause); ``/recordingReady`` follows once the file is
    stored."""
    reply_id = _reply_id(call)
    connection_id = _connection_id(call)
    ms = client(config, call)
    return Request(_sending(lambda: ms.stoprecording(reply_id, connection_id)))


def recording_url(call: Call, config: Mapping[str, Any], file_name: str | None = None) -> str:
    """A prompt-file download URL of ``file_name`` (default: the call's first recording
    file); the mediaservice keeps it valid 15 minutes.

    Only one on the provider's storage hosts (``client.storage_hosts``): the browser is
    redirected there, so any other is refused (502) and logged, never followed.
    """
    name = file_name or call.recording_file_name or ""
    url = _sending(lambda: client(config, call).promptfile_url(name))()
    hosts = storage_hosts(config)
    allow_http = str(config.get("DESK_MEDIASERVICE_URL") or "").lower().startswith("http://")
    if not playback_url_allowed(url, hosts, allow_http=allow_http):
        # The host only: the rest of a pre-signed URL is a credential.
        try:
            shown = str(urlsplit(str(url)).hostname or "(no host)")
        except ValueError:
            shown = "(unreadable)"
        log.warning("call %s: the mediaservice answered a playback address on %r, not one of "
                    "its storage hosts %s (DESK_MEDIASERVICE_STORAGE_HOSTS); refused",
                    call.id, shown[:200], ", ".join(hosts) or "(none)")
        raise ProviderFailure("the provider returned a playback address outside its storage "
                              "hosts", kind="error", answer={"host": shown[:200]})
    return str(url)
