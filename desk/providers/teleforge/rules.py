"""Teleforge Click2Dial adapter: dial rules, the request payload, the WebRTC SIP headers.

Owns what the desk knows about placing a Teleforge Click2Dial call: checking and normalising
what an agent typed into the dial form (``validate_dial``), the JSON body for
``POST /click2dial/calls`` in the key spelling of the PBX's version (``payload``) and the
WebRTC variant's SIP headers (``sip_headers``). Pure, like the other adapters: no
``request``, no ``current_app``, no database.

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

CALLEE_EXPECTED = (
    "10 digits starting 0 (0820001234), 11 digits starting 27 (27820001234) "
    "or 13 to 16 digits starting 00 (0027820001234)"
)
AGENT_EXPECTED = f"a 3 or 4 digit extension (1001), or a phone number: {CALLEE_EXPECTED}"
OUTBOUND_EXPECTED = (
    "'random', 'tvc_<campaign>', 11 digits starting 27 (27820001234, recommended) "
    "or 10 digits starting 0 (0820001234)"
)
REFERENCE_EXPECTED = (
    f"letters, digits and . - _ ~ only, at most {REFERENCE_MAX} characters; "
    "leave it empty to have one generated"
)


# --- the dial form -------------------------------------------------------------------------


class DialInvalid(ValueError):
    """The dial form has mistakes: ``errors`` maps field → message, ``warnings`` likewise."""

    def __init__(self, errors: dict[str, str], warnings: dict[str, str] | None = None) -> None:
        self.errors = dict(errors)
        self.warnings = dict(warnings or {})
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


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


def _is_callee(number: str) -> bool:
    return any(form.fullmatch(number) for form in _CALLEE_FORMS)


def _received(raw: str, normalised: str) -> str:
    """How a message quotes what the person typed, and what we made of it when different."""
    shown = raw.strip()
    digits = sum(ch.isdigit() for ch in normalised)
    if shown != normalised:
        return f"{shown[:40]!r} (read as {normalised[:40]!r}, {digits} digits)"
    return f"{shown[:40]!r} ({digits} digits)" if normalised.isdigit() else f"{shown[:40]!r}"


def _check_agent(raw: str) -> tuple[str, str | None]:
    value = normalise_number(raw)
    if not value:
        return value, f"the agent extension is missing; expected {AGENT_EXPECTED}"
    if _EXTENSION.fullmatch(value) or _is_callee(value):
        return value, None
    return value, f"received {_received(raw, value)}; expected {AGENT_EXPECTED}"


def _check_callee(raw: str) -> tuple[str, str | None]:
    value = normalise_number(raw)
    if not value:
        return value, f"the number to dial is missing; expected {CALLEE_EXPECTED}"
    if _is_callee(value):
        return value, None
    return value, f"received {_received(raw, value)}; expected {CALLEE_EXPECTED}"


def _check_outbound(raw: str) -> tuple[str, str | None, str | None]:
    """Returns (value, error, warning)."""
    text = raw.strip()
    if not text:
        return text, f"the outbound caller ID is missing; expected {OUTBOUND_EXPECTED}", None
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
        return (
            value,
            None,
            (
                f"{value} is allowed, but providers often reject a caller ID starting 0; "
                f"{recommended} is the recommended form"
            ),
        )
    if text.lower().startswith("tvc_"):
        return (
            text,
            (
                f"received {text[:40]!r}; a campaign caller ID is 'tvc_' followed by 1 to 100 "
                "letters, digits or . - _ ~"
            ),
            None,
        )
    return value, f"received {_received(raw, value)}; expected {OUTBOUND_EXPECTED}", None


def _check_reference(raw: str) -> tuple[str, str | None]:
    value = raw.strip()
    if len(value) > REFERENCE_MAX:
        return value, (
            f"received {len(value)} characters; at most {REFERENCE_MAX} are allowed "
            "(Teleforge would cut the rest off and its notifications would no longer match)"
        )
    bad = sorted({ch for ch in value if not _REFERENCE_CHAR.fullmatch(ch)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad[:10])
        return value, f"received {value[:40]!r}, which contains {shown}; use {REFERENCE_EXPECTED}"
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
