"""Teleforge Click2Dial adapter: dial rules, the request payload, the WebRTC SIP headers.

Owns what the desk knows about placing a Teleforge Click2Dial call: checking and normalising
what an agent typed into the dial form (``validate_dial``), the JSON body for
``POST /click2dial/calls`` in the key spelling of the PBX's version (``payload``) and the
WebRTC variant's SIP headers (``sip_headers``). Pure, like the other adapters: no
``request``, no ``current_app``, no database. Its messages are lazy (``lazy_gettext``): a
page shows them in its reader's language, the audit log and the logs in English.

Where each fact comes from (Teleforge's public pages, docs for v4.0.0 onwards, checked in
``specs/README.md`` section "Teleforge Click2Dial"; the ``specs/teleforge-click2dial.txt``
copy is a garbled diff page and is not relied on):

* "Create a Call" (https://tforge.atlassian.net/wiki/spaces/EPD/pages/3441738/Create+a+Call):
  the body ``{agent, callee, outbound_id, contact_ref}`` from v3.0.0 and
  ``{agent, callee, outbound_id, call_ref}`` before; the agent, callee and outbound ID forms;
  the reference's characters and its 230-character limit; the SIP headers ``X-Teleforge-*``
  from v4.0.0 (``X-Platforma-*`` before); default port 8300 from v3.3.
* ``random`` as an outbound ID appears in the pages for v2.3 to v3.x (it needs PBX
  configuration) and is absent from the v4 page; the desk still offers it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask_babel import LazyString, force_locale, lazy_gettext

PROVIDER = "teleforge"
DEFAULT_PORT = 8300  # from Teleforge v3.3; older PBXs use the port in their issued configuration
REFERENCE_MAX = 230  # Teleforge truncates longer references silently; we refuse them instead

_EXTENSION = re.compile(r"[0-9]{3,4}")
# The document's three callee forms: national, international without prefix, with 00 prefix.
_CALLEE_FORMS = (re.compile(r"0[0-9]{9}"), re.compile(r"27[0-9]{9}"), re.compile(r"00[0-9]{11,14}"))
_OUTBOUND_RECOMMENDED = re.compile(r"27[0-9]{9}")
_OUTBOUND_NATIONAL = re.compile(r"0[0-9]{9}")
# Campaign names are PBX configuration and undocumented; keep them to a safe token.
_OUTBOUND_CAMPAIGN = re.compile(r"tvc_([A-Za-z0-9._~-]{1,100})", re.IGNORECASE)
_REFERENCE_CHAR = re.compile(r"[A-Za-z0-9._~-]")
_VERSION = re.compile(r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?", re.IGNORECASE)
# Pasted numbers: whitespace (any kind, and the invisible characters web pages carry),
# dashes (ASCII and typographic), dots, brackets, slashes.
_PUNCTUATION = re.compile(r"[\s\u200b-\u200d\u2060\ufeff\-\u2010-\u2015\u2212.()\[\]/]")
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")

# What the dial form says, in the words of someone typing a number: what to type, never
# why the PBX needs it. ``%(n)s`` is a count, ``%(chars)s`` the characters to take out
# (``name_characters``); ``fill`` puts them in. Each text is in the reader's language when
# shown, and English where it is stored or logged (``english``). The form's checks while
# typing (static/board/dial.js, given these texts by desk.web.dial) show the same words for
# the simple rules: missing, characters, and numbers that are already too long.
NUMBER_MISSING = lazy_gettext("Type the number to dial, for example 082 000 1234.")
NUMBER_CHARACTERS = lazy_gettext(
    "A phone number has only digits, spaces, dashes and brackets, and + only at the start. "
    "Take out %(chars)s."
)
NUMBER_DIGITS = lazy_gettext("Type the number with the digits 0 to 9.")
NUMBER_START = lazy_gettext(
    "Start the number with 0 (082 000 1234), 27 (27 82 000 1234) or + (+27 82 000 1234)."
)
# (prefix, digits before the counted ones, fewest, most, message): the document's three forms.
NUMBER_LENGTHS: tuple[tuple[str, int, int, int, LazyString], ...] = (
    ("00", 2, 11, 14, lazy_gettext(
        "A number starting + or 00 has 11 to 14 more digits; this one has %(n)s.")),
    ("0", 0, 10, 10, lazy_gettext(
        "A number starting 0 has 10 digits, like 082 000 1234; this one has %(n)s.")),
    ("27", 0, 11, 11, lazy_gettext(
        "A number starting 27 has 11 digits, like 27 82 000 1234; this one has %(n)s.")),
)
AGENT_MISSING = lazy_gettext(
    "Type the extension to ring first, for example 1001, or pick an agent from the list."
)
AGENT_INVALID = lazy_gettext(
    "Type a 3 or 4 digit extension, like 1001, or a phone number to ring first, "
    "like 082 000 1234."
)
OUTBOUND_MISSING = lazy_gettext("Type the caller ID to show, or pick one from the list.")
OUTBOUND_INVALID = lazy_gettext(
    "Type random, tvc_ and a campaign name (tvc_sales), or a number: 11 digits starting 27 "
    "(27 82 000 1234) or 10 digits starting 0."
)
OUTBOUND_CAMPAIGN = lazy_gettext(
    "After tvc_ type the campaign name: 1 to 100 letters, digits or . - _ ~ (tvc_sales)."
)
OUTBOUND_NATIONAL = lazy_gettext(
    "%(value)s works, but providers often reject a caller ID starting 0; use %(recommended)s "
    "instead."
)
REFERENCE_TOO_LONG = lazy_gettext(
    "A reference has at most %(most)s characters; this one has %(n)s. Shorten it, or "
    "leave it empty and the desk makes one."
)
REFERENCE_CHARACTERS = lazy_gettext(
    "A reference has only letters, digits and . - _ ~. Take out %(chars)s."
)
# How a message names characters nobody can see.
CHARACTER_NAMES = {" ": lazy_gettext("the spaces"), "\t": lazy_gettext("the tabs"),
                   "\n": lazy_gettext("the line breaks"),
                   "\r": lazy_gettext("the line breaks")}
NAMED_AT_MOST = 10


def _filled(message: Any, values: dict[str, Any]) -> str:
    return str(message) % values


def fill(message: Any, **values: Any) -> LazyString:
    """``message`` (a ``lazy_gettext`` text) with ``values`` in its ``%(name)s`` places,
    translated whenever it is shown: in the reader's language on a page, in English where
    ``english`` reads it. Values may be lazy too."""
    return LazyString(_filled, message, values)


def english(text: Any) -> str:
    """``text`` (a string or a lazy message) in English: what the database, the audit log and
    the logs keep, whatever the language of the page that made it."""
    with force_locale("en"):
        return str(text)


# --- the dial form -------------------------------------------------------------------------


class DialInvalid(ValueError):
    """The dial form has mistakes: ``errors`` maps field → message, ``warnings`` likewise."""

    def __init__(self, errors: dict[str, str], warnings: dict[str, str] | None = None) -> None:
        self.errors = dict(errors)
        self.warnings = dict(warnings or {})
        super().__init__("; ".join(f"{name}: {english(message)}"
                                   for name, message in self.errors.items()))


@dataclass(frozen=True)
class DialRequest:
    """A checked dial: normalised values (show these to the agent) and any warnings."""

    agent: str
    callee: str
    outbound_id: str
    reference: str
    reference_generated: bool = False
    warnings: dict[str, str] = field(default_factory=dict, hash=False)


def normalise_number(raw: str) -> str:
    """Strip what people paste around a number; a leading ``+`` becomes ``00``.

    ``"+27 (82) 123-4567"`` → ``"0027821234567"``, ``"082 123 4567"`` → ``"0821234567"``.
    A trunk zero in brackets after an international prefix (``"+27 (0)82 ..."``) is dropped:
    kept, it would make a 14-digit number that passes the 00 rule but rings nobody. Anything
    else (letters, a ``+`` in the middle) is left in place for the validator to report.
    """
    text = raw.strip()
    if text.startswith(("+", "00")):
        text = _TRUNK_ZERO.sub("", text)
    text = _PUNCTUATION.sub("", text)
    if text.startswith("+"):
        text = "00" + text[1:]
    return text


def is_extension(value: str) -> bool:
    """A normalised agent value that is an extension (3 or 4 digits), not a phone number."""
    return bool(_EXTENSION.fullmatch(value))


def _is_callee(number: str) -> bool:
    return any(form.fullmatch(number) for form in _CALLEE_FORMS)


def name_characters(chars: set[str]) -> str:
    """``{"/", " "}`` → ``the spaces, “/”``: each character once, in code point order."""
    names: list[str] = []
    for ch in sorted(chars)[:NAMED_AT_MOST]:
        known = CHARACTER_NAMES.get(ch)
        name = str(known) if known is not None else f"\u201c{ch}\u201d"
        if name not in names:
            names.append(name)
    return ", ".join(names)


def _number_problem(value: str) -> str:
    """What is wrong with a normalised number that fits none of the forms."""
    bad = {ch for ch in value if ch not in "0123456789"}
    if any(ch.isdecimal() for ch in bad):  # digits of another script (Arabic-Indic, full-width)
        return NUMBER_DIGITS
    if bad:
        return fill(NUMBER_CHARACTERS, chars=LazyString(name_characters, bad))
    for prefix, skip, _fewest, _most, message in NUMBER_LENGTHS:
        if value.startswith(prefix):
            return fill(message, n=len(value) - skip)
    return NUMBER_START


def _check_agent(raw: str) -> tuple[str, str | None]:
    value = normalise_number(raw)
    if not value:
        return value, AGENT_MISSING
    if is_extension(value) or _is_callee(value):
        return value, None
    return value, AGENT_INVALID


def _check_callee(raw: str) -> tuple[str, str | None]:
    value = normalise_number(raw)
    if not value:
        return value, NUMBER_MISSING
    if _is_callee(value):
        return value, None
    return value, _number_problem(value)


def _check_outbound(raw: str) -> tuple[str, str | None, str | None]:
    """Returns (value, error, warning)."""
    text = raw.strip()
    if not text:
        return text, OUTBOUND_MISSING, None
    if text.lower() == "random":
        return "random", None, None
    campaign = _OUTBOUND_CAMPAIGN.fullmatch(text)
    if campaign:
        return f"tvc_{campaign.group(1)}", None, None
    value = normalise_number(text)
    # +27 82 ... is the recommended 27 form with an international prefix; say it that way.
    if value.startswith("0027") and _OUTBOUND_RECOMMENDED.fullmatch(value[2:]):
        value = value[2:]
    if _OUTBOUND_RECOMMENDED.fullmatch(value):
        return value, None, None
    if _OUTBOUND_NATIONAL.fullmatch(value):
        recommended = "27" + value[1:]
        return value, None, fill(OUTBOUND_NATIONAL, value=value, recommended=recommended)
    if text.lower().startswith("tvc_"):
        return text, OUTBOUND_CAMPAIGN, None
    return value, OUTBOUND_INVALID, None


def _check_reference(raw: str) -> tuple[str, str | None]:
    value = raw.strip()
    if len(value) > REFERENCE_MAX:
        # Refused, never cut: Teleforge would keep only the start, and its notifications
        # would then name a reference no row has.
        return value, fill(REFERENCE_TOO_LONG, most=REFERENCE_MAX, n=len(value))
    bad = {ch for ch in value if not _REFERENCE_CHAR.fullmatch(ch)}
    if bad:
        return value, fill(REFERENCE_CHARACTERS, chars=LazyString(name_characters, bad))
    return value, None


def generate_reference() -> str:
    """A reference for a dial the agent left without one: ``desk-`` + 32 random hex digits."""
    return f"desk-{uuid.uuid4().hex}"


def validate_dial(agent: str, callee: str, outbound_id: str, reference: str) -> DialRequest:
    """Check every field of a dial at once. Raises ``DialInvalid`` listing each bad field.

    Follows the document's rules; where the form is more forgiving it is in what people
    paste (see ``normalise_number``). ``agent`` may also be a phone number: the document
    defines it as "the agent extension or the first number connected to the call".
    """
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}

    agent_value, error = _check_agent(agent)
    if error:
        errors["agent"] = error
    callee_value, error = _check_callee(callee)
    if error:
        errors["callee"] = error
    outbound_value, error, warning = _check_outbound(outbound_id)
    if error:
        errors["outbound_id"] = error
    if warning:
        warnings["outbound_id"] = warning
    reference_value, error = _check_reference(reference)
    if error:
        errors["reference"] = error

    if errors:
        raise DialInvalid(errors, warnings)
    generated = not reference_value
    return DialRequest(
        agent=agent_value,
        callee=callee_value,
        outbound_id=outbound_value,
        reference=reference_value or generate_reference(),
        reference_generated=generated,
        warnings=warnings,
    )


# --- versions, payload, SIP headers ----------------------------------------------------------


def parse_version(version: str) -> tuple[int, int, int]:
    """``"2.9"``, ``"3.0.0"``, ``"v4.1"`` → a comparable triple. Raises ``ValueError``."""
    match = _VERSION.fullmatch(str(version).strip())
    if not match:
        raise ValueError(
            f"Teleforge version {str(version)[:40]!r} is not a version number; "
            "expected something like 3.3 or 4.0.1"
        )
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


def reference_key(version: str) -> str:
    """The reference's key in the dial body: ``contact_ref`` from v3.0.0, ``call_ref`` before.

    ("Create a Call": "Payload from v3.0.0 upwards, to fix spec design".) Teleforge echoes
    the value back as ``contact_ref`` in the call's CDR, which is how the desk matches the
    CDR to the row it made for the dial (``Call.provider_call_id`` is this reference).
    """
    return "contact_ref" if parse_version(version) >= (3, 0, 0) else "call_ref"


def payload(request: DialRequest, version: str) -> dict[str, str]:
    """The JSON body of ``POST /click2dial/calls``. All values are strings (leading zeros)."""
    return {
        "agent": request.agent,
        "callee": request.callee,
        "outbound_id": request.outbound_id,
        reference_key(version): request.reference,
    }


def _sip_prefix(version: str) -> str:
    return "X-Teleforge" if parse_version(version) >= (4, 0, 0) else "X-Platforma"


def sip_headers(request: DialRequest, version: str) -> dict[str, str]:
    """The extra SIP headers of the WebRTC variant: ``X-Teleforge-*`` from v4.0.0, before
    ``X-Platforma-*``. The browser sends them with ``invite('sip:<callee>@<server>')``."""
    prefix = _sip_prefix(version)
    return {
        f"{prefix}-Outbound-ID": request.outbound_id,
        f"{prefix}-Contact-Ref": request.reference,
    }


def sip_error_header(version: str) -> str:
    """The SIP header a failed WebRTC call carries its validation errors in."""
    return f"{_sip_prefix(version)}-Error"


# The reason phrases RFC 3261 (21.4 to 21.6) gives the final answers a refused or unanswered
# INVITE gets, as the desk shows them: SIP servers send these words, in English, next to
# the status code. Any other phrase is shown as it came.
SIP_REASONS: dict[str, LazyString] = {
    "bad request": lazy_gettext("Bad Request"),
    "unauthorized": lazy_gettext("Unauthorized"),
    "forbidden": lazy_gettext("Forbidden"),
    "not found": lazy_gettext("Not Found"),
    "not acceptable": lazy_gettext("Not Acceptable"),
    "proxy authentication required": lazy_gettext("Proxy Authentication Required"),
    "request timeout": lazy_gettext("Request Timeout"),
    "gone": lazy_gettext("Gone"),
    "temporarily unavailable": lazy_gettext("Temporarily Unavailable"),
    "call/transaction does not exist": lazy_gettext("Call/Transaction Does Not Exist"),
    "address incomplete": lazy_gettext("Address Incomplete"),
    "busy here": lazy_gettext("Busy Here"),
    "request terminated": lazy_gettext("Request Terminated"),
    "not acceptable here": lazy_gettext("Not Acceptable Here"),
    "server internal error": lazy_gettext("Server Internal Error"),
    "service unavailable": lazy_gettext("Service Unavailable"),
    "server time-out": lazy_gettext("Server Time-out"),
    "busy everywhere": lazy_gettext("Busy Everywhere"),
    "decline": lazy_gettext("Decline"),
    "does not exist anywhere": lazy_gettext("Does Not Exist Anywhere"),
}


def sip_reason(phrase: str) -> Any:
    """A SIP answer's reason phrase as the reader's language says it, if it is one of
    RFC 3261's (``SIP_REASONS``); else the phrase as it came."""
    return SIP_REASONS.get(phrase.strip().lower(), phrase)
