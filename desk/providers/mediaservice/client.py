"""The mediaservice REST client: hang up, drop a party, split, record, prompt files.

Every request carries an RS256 JWT signed with the customer's private key and a timeout.

Two things are settings because the provider's documents leave them open (the specs README,
section "iotcomms.io mediaservice", and ``desk.providers.mediaservice.parse``):

* **Endpoint family** (``DESK_MEDIASERVICE_API``). The OpenAPI page lists base endpoints and
  ``...jwt`` variants (``hangupcalljwt``, ``answerremotecalljwt``, ``placeremotecalljwt``,
  ``sendremotecallringbackjwt``); one version of the provider's page labels the base ones
  with AWS SigV4 and the variants with JWT. ``api="base"`` (the default, as before) calls the
  base names; ``api="jwt"`` calls the ``...jwt`` variant wherever one exists. The token is
  the same RS256 JWT either way; endpoints without a variant (``splitconnection``,
  ``startrecording``, ``promptfile``, ...) keep their names.
* **Hybrid sites** (``DESK_MEDIASERVICE_SITE_URLS``). A callback's ``siteBaseUrl`` names where
  API calls about that call should go. The desk follows it only when
  ``allowed_site_base_url`` finds it in the configured list; otherwise it is logged and the
  configured ``DESK_MEDIASERVICE_URL`` is used, so a forged callback cannot make the desk send
  its signed token to another host.
* **Storage hosts** (``DESK_MEDIASERVICE_STORAGE_HOSTS``). ``promptfile/{name}/url`` answers
  a pre-signed download URL the browser is redirected to; where the provider stores files is
  not documented. The desk redirects only to a host in that list or a subdomain of one
  (default: the host of ``DESK_MEDIASERVICE_URL`` and of each hybrid site), over HTTPS (HTTP
  too only when ``DESK_MEDIASERVICE_URL`` itself is HTTP, as a loopback stand-in is), so an
  answer naming another host cannot send agents anywhere (``playback_url_allowed``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
)

_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_BASE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s?#]*)?$", re.IGNORECASE)

API_FAMILIES = ("base", "jwt")
"""Values of ``DESK_MEDIASERVICE_API``."""
JWT_VARIANTS = {
    "hangupcall": "hangupcalljwt",
    "answerremotecall": "answerremotecalljwt",
    "placeremotecall": "placeremotecalljwt",
    "sendremotecallringback": "sendremotecallringbackjwt",
}
"""The base endpoints the OpenAPI page also lists with a ``jwt`` suffix."""


def normalise_base_url(url: str) -> str:
    """``HTTPS://Site.example/ms/`` → ``https://site.example/ms``: how base URLs compare.

    Raises ``ValueError`` for anything but ``http(s)://host[:port][/path]`` (no user info,
    query or fragment, which could smuggle another host past a comparison).
    """
    value = (url or "").strip()
    if not _BASE_URL.match(value):
        raise ValueError(f"not a base URL like https://host[:port][/path]: {value[:80]!r}")
    scheme, rest = value.split("://", 1)
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def allowed_site_base_url(url: Any, allowed: Sequence[str]) -> str | None:
    """``url`` (a callback's ``siteBaseUrl``) normalised, when it is one of ``allowed``
    (normalised base URLs, ``DESK_MEDIASERVICE_SITE_URLS``); else None. Exact match only:
    a prefix would let ``https://site.example.evil.test`` pass for ``https://site.example``."""
    if not isinstance(url, str) or not allowed:
        return None
    try:
        candidate = normalise_base_url(url)
    except ValueError:
        return None
    return candidate if candidate in allowed else None


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def normalise_host(name: str) -> str:
    """``Files.Example.COM.`` → ``files.example.com``; ``ValueError`` for anything but a
    host name (no scheme, port, path or wildcard)."""
    host = (name or "").strip().lower().rstrip(".")
    if not _HOST.match(host):
        raise ValueError(f"not a host name like files.example.com: {name[:80]!r}")
    return host


def storage_hosts(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Where playback URLs may point: ``DESK_MEDIASERVICE_STORAGE_HOSTS`` (normalised by the
    settings check), else the hosts of ``DESK_MEDIASERVICE_URL`` and the hybrid sites (read
    now: the demo sets its URL once it knows its own address)."""
    configured = tuple(config.get("DESK_MEDIASERVICE_STORAGE_HOSTS") or ())
    if configured:
        return configured
    urls = [config.get("DESK_MEDIASERVICE_URL") or "", *config.get(
        "DESK_MEDIASERVICE_SITE_URLS", ())]
    hosts = (urlsplit(url).hostname for url in urls if url)
    return tuple(dict.fromkeys(host.rstrip(".") for host in hosts if host))


def playback_url_allowed(url: Any, hosts: Sequence[str], allow_http: bool = False) -> bool:
    """Whether ``url`` is an ``https`` (or, with ``allow_http``, ``http``) URL on one of
    ``hosts`` or a subdomain of one. No user info, backslashes, spaces or control
    characters: browsers and ``urlsplit`` could read such a URL's host differently."""
    if not isinstance(url, str) or not hosts or not _PRINTABLE.match(url) or any(
            ch in url for ch in "\\ "):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme not in (("https", "http") if allow_http else ("https",)):
        return False
    if "@" in parts.netloc or not parts.hostname:
        return False
    host = parts.hostname.rstrip(".")
    return any(host == allowed or host.endswith("." + allowed) for allowed in hosts)


def N_(text: str) -> str:
    """Marks a message for the catalogue; ``desk.services.sweeper.stored_text`` translates
    the English a row keeps of it when a page shows it."""
    return text


@dataclass(frozen=True)
class Sentences:
    """What an agent reads when one request fails, a whole sentence for each way it fails
    (``ProviderError.kind``): ``template % values`` is the English ``ProviderError`` says."""

    timeout: str
    """No answer in time: ``%(seconds)s``, the client's timeout."""
    connection_refused: str
    network_error: str
    failed: str
    """HTTP 5xx: ``%(status)s``."""
    refused: str
    """The mediaservice said no: ``%(reason)s``, its reason (``_refusal``)."""
    unconfirmed: str
    """An answer the desk cannot read: ``%(answer)s``, its start, quoted."""

    def all(self) -> tuple[str, ...]:
        return (self.timeout, self.connection_refused, self.network_error, self.failed,
                self.refused, self.unconfirmed)


HANG_UP = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to hang up the call; "
       "it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to hang up the call (connection refused). Try again "
       "in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to hang up the call (network error). Try again in a "
       "moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to hang up the call (HTTP %(status)s). Try again in a moment."),
    N_("The call service refused to hang up the call: %(reason)s."),
    N_("The call service did not confirm that it will hang up the call; its answer was "
       "%(answer)s."),
)
HANG_UP_PARTICIPANT = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to hang up that "
       "participant; it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to hang up that participant (connection refused). "
       "Try again in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to hang up that participant (network error). Try "
       "again in a moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to hang up that participant (HTTP %(status)s). Try again in a "
       "moment."),
    N_("The call service refused to hang up that participant: %(reason)s."),
    N_("The call service did not confirm that it will hang up that participant; its answer "
       "was %(answer)s."),
)
TRANSFER = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to transfer the call; "
       "it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to transfer the call (connection refused). Try again "
       "in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to transfer the call (network error). Try again in a "
       "moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to transfer the call (HTTP %(status)s). Try again in a "
       "moment."),
    N_("The call service refused to transfer the call: %(reason)s."),
    N_("The call service did not confirm that it will transfer the call; its answer was "
       "%(answer)s."),
)
START_RECORDING = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to start recording; "
       "it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to start recording (connection refused). Try again "
       "in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to start recording (network error). Try again in a "
       "moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to start recording (HTTP %(status)s). Try again in a moment."),
    N_("The call service refused to start recording: %(reason)s."),
    N_("The call service did not confirm that it will start recording; its answer was "
       "%(answer)s."),
)
STOP_RECORDING = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to stop recording; "
       "it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to stop recording (connection refused). Try again "
       "in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to stop recording (network error). Try again in a "
       "moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to stop recording (HTTP %(status)s). Try again in a moment."),
    N_("The call service refused to stop recording: %(reason)s."),
    N_("The call service did not confirm that it will stop recording; its answer was "
       "%(answer)s."),
)
LIST_RECORDINGS = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to list the "
       "recordings; it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to list the recordings (connection refused). Try "
       "again in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to list the recordings (network error). Try again "
       "in a moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to list the recordings (HTTP %(status)s). Try again in a "
       "moment."),
    N_("The call service refused to list the recordings: %(reason)s."),
    N_("The call service did not confirm that it will list the recordings; its answer was "
       "%(answer)s."),
)
FETCH_RECORDING = Sentences(
    N_("The call service did not answer within %(seconds)s s when asked to fetch the "
       "recording; it may still happen. Check the call before trying again."),
    N_("Could not reach the call service to fetch the recording (connection refused). Try "
       "again in a moment; if it keeps failing, tell your supervisor."),
    N_("Could not reach the call service to fetch the recording (network error). Try again "
       "in a moment; if it keeps failing, tell your supervisor."),
    N_("The call service failed to fetch the recording (HTTP %(status)s). Try again in a "
       "moment."),
    N_("The call service refused to fetch the recording: %(reason)s."),
    N_("The call service did not confirm that it will fetch the recording; its answer was "
       "%(answer)s."),
)
NO_RECORDING_ADDRESS = N_("The call service gave no address to fetch the recording.")
REQUESTS = (HANG_UP, HANG_UP_PARTICIPANT, TRANSFER, START_RECORDING, STOP_RECORDING,
            LIST_RECORDINGS, FETCH_RECORDING)
"""Every request's sentences."""
REFUSAL_REASONS = (
    N_("the desk is not authorised (check that the public key uploaded in the iotcomms portal "
       "matches the desk's private key)"),
    N_("unknown address (check the mediaservice base URL and domain)"),
    N_("it gave no reason"),
)
"""``%(reason)s`` of ``Sentences.refused`` when the mediaservice gave no reason of its own
(``_refusal``): not authorised (401/403), unknown address (404), ``success: false`` alone."""
MESSAGES = (*(text for sentences in REQUESTS for text in sentences.all()),
            NO_RECORDING_ADDRESS)
"""Every sentence a ``ProviderError`` of this client says (in English, ``template % values``)."""


class ProviderError(RuntimeError):
    """A mediaservice request failed; ``str()`` is a sentence an agent can read.

    ``kind``: ``refused`` (the mediaservice said no: ``success: false`` or HTTP 4xx),
    ``timeout`` (no answer in time: the action may still happen), ``unreachable`` (no
    connection), ``error`` (HTTP 5xx or an answer the desk cannot read).
    """

    def __init__(self, message: str, status: int | None = None, answer: Any = None,
                 kind: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.answer = answer
        self.kind = kind


def _refusal(answer: Any, status: int) -> str:
    if isinstance(answer, Mapping):
        for key in ("reason", "error", "message"):
            if isinstance(answer.get(key), str) and answer[key].strip():
                return answer[key].strip()[:200]
    not_authorised, unknown_address, no_reason = REFUSAL_REASONS
    if status in (401, 403):
        return not_authorised
    if status == 404:
        return unknown_address
    if isinstance(answer, Mapping) and answer.get("success") is False:
        return no_reason
    return f"HTTP {status}"


class MediaserviceClient:
    """Calls ``{base_url}/{domain}/<endpoint>`` with a fresh RS256 JWT and a timeout each.

    ``api`` picks the endpoint family (``API_FAMILIES``; see the module docstring). Every
    method returns the mediaservice's JSON answer, or raises ``ProviderError``.
    """

    def __init__(
        self,
        base_url: str,
        domain: str,
        private_key_pem: str | bytes,
        timeout: float = 5.0,
        *,
        token_lifetime: int = 60,
        extra_claims: Mapping[str, Any] | None = None,
        api: str = "base",
    ) -> None:
        if api not in API_FAMILIES:
            raise ValueError(f"mediaservice API family must be one of {', '.join(API_FAMILIES)}, "
                             f"not {api!r}")
        if not re.match(r"^https?://[^/\s]+", base_url or ""):
            raise ValueError(f"mediaservice base URL must be http(s)://host..., not {base_url!r}")
        if not domain or "/" in domain or not _PRINTABLE.match(domain):
            raise ValueError(f"mediaservice domain must look like customer47.prod-eu-north-1."
                             f"iotcomms.io, not {domain!r}")
        if not timeout > 0:
            raise ValueError("timeout must be more than 0 seconds")
        try:
            key = load_pem_private_key(
                private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem,
                password=None,
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the mediaservice API key is not a PEM private key: {exc}") from None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the mediaservice API key must be an RSA private key (RS256)")
        self.base_url = base_url.rstrip("/")
        self.domain = domain
        self.timeout = timeout
        self._key = key
        self._token_lifetime = token_lifetime
        self._extra_claims = dict(extra_claims or {})
        self.api = api

    def endpoint(self, name: str) -> str:
        """The path segment for base endpoint ``name`` in this client's family."""
        return JWT_VARIANTS.get(name, name) if self.api == "jwt" else name

    def _token(self) -> str:
        now = int(time.time())
        claims = {**self._extra_claims, "iat": now, "exp": now + self._token_lifetime}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def _request(self, method: str, path: str, said: Sentences, *,
                 body: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None) -> dict[str, Any]:
        endpoint, slash, rest = path.partition("/")
        path = self.endpoint(endpoint) + slash + rest
        url = f"{self.base_url}/{quote(self.domain, safe='')}/{path}"
        try:
            response = requests.request(
                method, url, json=body, params=params, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._token()}",
                         "Accept": "application/json"},
            )
        except requests.Timeout as exc:
            raise ProviderError(said.timeout % {"seconds": format(self.timeout, "g")},
                                kind="timeout") from exc
        except requests.RequestException as exc:
            refused = "refused" in str(exc).lower()
            raise ProviderError(said.connection_refused if refused else said.network_error,
                                kind="unreachable") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = response.status_code
        if status >= 500:
            raise ProviderError(said.failed % {"status": status}, status, answer,
                                kind="error")
        if status >= 400 or (isinstance(answer, Mapping) and answer.get("success") is False):
            raise ProviderError(said.refused % {"reason": _refusal(answer, status)}, status,
                                answer, kind="refused")
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise ProviderError(said.unconfirmed % {"answer": repr(response.text[:120])},
                                status, answer, kind="error")
        return answer

    def hangupcall(self, reply_id: str) -> dict[str, Any]:
        """``POST /{domain}/hangupcall`` (``hangupcalljwt`` with ``api="jwt"``): busy if
        unanswered, else hang up."""
        return self._request("POST", "hangupcall", HANG_UP,
                             body={"replyId": reply_id})

    def hangupparticipant(self, participant_id: str, reply_id: str,
                          session_id: str) -> dict[str, Any]:
        """``POST /{domain}/hangupparticipant``: hang up one participant of the call."""
        return self._request(
            "POST", "hangupparticipant", HANG_UP_PARTICIPANT,
            body={"participantId": participant_id, "replyId": reply_id, "sessionId": session_id},
        )

    def splitconnection(self, reply_id: str, connection_id: str) -> dict[str, Any]:
        """``POST /{domain}/splitconnection``: the first step of a transfer; a callEvent
        per participant follows, answered by ``answer_for_call_event``."""
        return self._request("POST", "splitconnection", TRANSFER,
                             body={"replyId": reply_id, "connectionId": connection_id})

    def startrecording(self, recording_file_name: str, reply_id: str,
                       connection_id: str) -> dict[str, Any]:
        """``POST /{domain}/startrecording``; ``/recordingReady`` follows after the stop."""
        return self._request(
            "POST", "startrecording", START_RECORDING,
            body={"recordingFileName": recording_file_name, "replyId": reply_id,
                  "connectionId": connection_id},
        )

    def stoprecording(self, reply_id: str, connection_id: str) -> dict[str, Any]:
        """``POST /{domain}/stoprecording``: the file is then uploaded to prompt storage."""
        return self._request("POST", "stoprecording", STOP_RECORDING,
                             body={"replyId": reply_id, "connectionId": connection_id})

    def list_promptfiles(self, next_page: str | None = None) -> dict[str, Any]:
        """``GET /{domain}/promptfile``: one page, ``{"files": [...], "next": ...}``."""
        return self._request("GET", "promptfile", LIST_RECORDINGS,
                             params={"next": next_page} if next_page else None)

    def promptfile_url(self, name: str) -> str:
        """``GET /{domain}/promptfile/{filename}/url``: a download URL valid 15 minutes."""
        answer = self._request("GET", f"promptfile/{quote(name, safe='')}/url",
                               FETCH_RECORDING)
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise ProviderError(NO_RECORDING_ADDRESS, 200, answer, kind="error")
        return url
