"""Teleforge Click2Dial's dial side: the field rules, the request body and the real client.

The client runs against a small HTTP server on 127.0.0.1 (a fixture below) that records every
request, so the JSON on the wire, the failure kinds and "exactly one request, never a retry"
are checked end to end without mocking our code. The body's keys are those of Teleforge's
"Create a Call" page (``tests/providers/teleforge/fixtures/dial_v3.json``, ``dial_v2.json``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from desk.providers.teleforge.client import TeleforgeClient, TeleforgeError, field_errors_from
from desk.providers.teleforge.rules import (
    REFERENCE_MAX,
    DialInvalid,
    DialRequest,
    generate_reference,
    normalise_number,
    parse_version,
    payload,
    sip_error_header,
    sip_headers,
    validate_dial,
)
from tests.teleforge_standin import dial_body


def dial(**overrides: str) -> DialRequest:
    fields = {"agent": "1001", "callee": "0820001234", "outbound_id": "random", "reference": "r1"}
    fields.update(overrides)
    return validate_dial(**fields)


def errors_of(**overrides: str) -> dict[str, str]:
    with pytest.raises(DialInvalid) as caught:
        dial(**overrides)
    return caught.value.errors


# --- normalising what people paste ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("082 123 4567", "0821234567"),
        ("+27 (82) 123-4567", "0027821234567"),
        ("+27 (0)82 123 4567", "0027821234567"),  # trunk zero dropped, not dialled
        ("0027 (0) 82 123 4567", "0027821234567"),
        ("(082) 123-4567", "0821234567"),
        ("082.123.4567", "0821234567"),
        ("  27 82 000 1234 ", "27820001234"),
        ("0027-82-000-1234", "0027820001234"),
        ("\u00a0082\u2013123\u20134567\u200b", "0821234567"),  # nbsp, en dashes, zero width
        ("082/123/4567", "0821234567"),
        ("082 ABC 4567", "082ABC4567"),  # left for the validator to report
        ("27+821234567", "27+821234567"),
        ("(0)82 123 4567", "0821234567"),  # national: the brackets go, the zero stays
        ("", ""),
    ],
)
def test_normalise_number(raw: str, expected: str) -> None:
    assert normalise_number(raw) == expected


# --- callee ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0820001234", "0820001234"),  # 10 digits starting 0
        ("27820001234", "27820001234"),  # 11 digits starting 27
        ("0027820001234", "0027820001234"),  # 13 digits starting 00
        ("0027820001234567"[:14], "0027820001234567"[:14]),
        ("0027820001234567", "0027820001234567"),  # 16 digits starting 00
        ("082 123 4567", "0821234567"),
        ("+27 (82) 123-4567", "0027821234567"),
        ("+27821234567", "0027821234567"),
        ("+44 20 7946 0958", "00442079460958"),
        # The document's rule is "10 digits, must start with 0": it does not exclude 00.
        ("0012345678", "0012345678"),
    ],
)
def test_callee_accepted(raw: str, expected: str) -> None:
    assert dial(callee=raw).callee == expected


STARTS = "Start the number with 0 (082 000 1234), 27 (27 82 000 1234) or + (+27 82 000 1234)."
STARTING_0 = "A number starting 0 has 10 digits, like 082 000 1234; this one has {}."
STARTING_27 = "A number starting 27 has 11 digits, like 27 82 000 1234; this one has {}."
STARTING_00 = "A number starting + or 00 has 11 to 14 more digits; this one has {}."
CHARACTERS = ("A phone number has only digits, spaces, dashes and brackets, and + only at the "
              "start. Take out {}.")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("082000123", STARTING_0.format(9)),
        ("08200012345", STARTING_0.format(11)),  # 11 digits starting 0 (not 27)
        ("2782000123", STARTING_27.format(10)),
        ("278200012345", STARTING_27.format(12)),
        ("28820001234", STARTS),
        ("002782000123", STARTING_00.format(10)),  # 12 digits starting 00
        ("00278200012345678", STARTING_00.format(15)),  # 17 digits starting 00
        ("+27 82 000 12", STARTING_00.format(9)),  # the digits after the +
        ("820001234", STARTS),  # no leading 0
        ("082 ABC 4567", CHARACTERS.format("\u201cA\u201d, \u201cB\u201d, \u201cC\u201d")),
        ("082-123-4567 ext 12", CHARACTERS.format("\u201ce\u201d, \u201ct\u201d, \u201cx\u201d")),
        ("27+821234567", CHARACTERS.format("\u201c+\u201d")),
        ("٠٨٢٠٠٠١٢٣٤", "Type the number with the digits 0 to 9."),  # Arabic-Indic digits
    ],
)
def test_callee_rejected_says_what_to_type(raw: str, message: str) -> None:
    assert errors_of(callee=raw)["callee"] == message


def test_callee_missing() -> None:
    assert errors_of(callee="   ")["callee"] == "Type the number to dial, for example 082 000 1234."


# --- agent ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("100", "100"),
        ("1001", "1001"),
        (" 1001 ", "1001"),
        ("0820001234", "0820001234"),  # "or the first number connected to the call"
        ("+27 82 000 1234", "0027820001234"),
    ],
)
def test_agent_accepted(raw: str, expected: str) -> None:
    assert dial(agent=raw).agent == expected


@pytest.mark.parametrize("raw", ["12", "12345", "ext1001", "10a1", "082000123"])
def test_agent_rejected(raw: str) -> None:
    message = errors_of(agent=raw)["agent"]
    assert message.startswith("Type a 3 or 4 digit extension, like 1001, or a phone number")


def test_agent_missing() -> None:
    assert errors_of(agent="")["agent"].startswith("Type the extension to ring first")


# --- outbound caller ID ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("random", "random"),
        (" RANDOM ", "random"),
        ("tvc_spring_sale", "tvc_spring_sale"),
        ("TVC_Sale-2", "tvc_Sale-2"),
        ("27820001234", "27820001234"),
        ("27 82 000 1234", "27820001234"),
        ("+27 82 000 1234", "27820001234"),  # the recommended form, said the documented way
        ("0027820001234", "27820001234"),
    ],
)
def test_outbound_accepted_without_warning(raw: str, expected: str) -> None:
    request = dial(outbound_id=raw)
    assert request.outbound_id == expected
    assert request.warnings == {}


def test_outbound_national_is_allowed_with_a_warning() -> None:
    request = dial(outbound_id="082 000 1234")
    assert request.outbound_id == "0820001234"
    assert "providers often reject" in request.warnings["outbound_id"]
    assert "27820001234" in request.warnings["outbound_id"]


@pytest.mark.parametrize(
    "raw",
    [
        "082000123",  # 9 digits starting 0
        "08200012345",  # 11 digits starting 0
        "2782000123",  # 10 digits starting 27
        "278200012345",  # 12 digits starting 27
        "00442079460958",  # international, but not a documented caller ID form
        "randomly",
        "anonymous",
    ],
)
def test_outbound_rejected(raw: str) -> None:
    message = errors_of(outbound_id=raw)["outbound_id"]
    assert message.startswith("Type random, tvc_ and a campaign name (tvc_sales), or a number")


@pytest.mark.parametrize("raw", ["tvc_", "tvc_spring sale", "tvc_a/b", "tvc_" + "x" * 101])
def test_outbound_bad_campaign(raw: str) -> None:
    assert errors_of(outbound_id=raw)["outbound_id"].startswith(
        "After tvc_ type the campaign name: 1 to 100 letters")


def test_outbound_missing() -> None:
    assert errors_of(outbound_id="")["outbound_id"].startswith("Type the caller ID to show")


# --- reference ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["a" * REFERENCE_MAX, "order-42", "A.b-c_d~9", "  crm-7  ", "x"],
)
def test_reference_accepted(raw: str) -> None:
    request = dial(reference=raw)
    assert request.reference == raw.strip()
    assert not request.reference_generated


def test_reference_of_231_characters_is_refused_not_truncated() -> None:
    message = errors_of(reference="a" * 231)["reference"]
    assert "at most 230 characters; this one has 231" in message


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("order 42", "Take out the spaces."),
        ("a/b", "Take out \u201c/\u201d."),
        ("café", "Take out \u201cé\u201d."),
        ("ref#1", "Take out \u201c#\u201d."),
        ("a+b", "Take out \u201c+\u201d."),
        ("x\ny", "Take out the line breaks."),
        ("a b/c d", "Take out the spaces, \u201c/\u201d."),  # each once
    ],
)
def test_reference_bad_characters_are_named(raw: str, shown: str) -> None:
    message = errors_of(reference=raw)["reference"]
    assert shown in message
    assert "letters, digits and . - _ ~" in message


def test_empty_reference_is_generated() -> None:
    request = dial(reference="  ")
    assert request.reference_generated
    assert request.reference.startswith("desk-")


def test_generated_references_are_valid_and_unique() -> None:
    references = {generate_reference() for _ in range(2000)}
    assert len(references) == 2000
    for reference in list(references)[:50]:
        assert dial(reference=reference).reference == reference
        assert len(reference) <= REFERENCE_MAX


def test_every_bad_field_is_reported_at_once_with_warnings_kept() -> None:
    with pytest.raises(DialInvalid) as caught:
        validate_dial("12", "12345", "0820001234", "a" * 231)
    assert set(caught.value.errors) == {"agent", "callee", "reference"}
    assert set(caught.value.warnings) == {"outbound_id"}
    assert "callee:" in str(caught.value)


def test_dial_request_is_frozen() -> None:
    request = dial()
    with pytest.raises(AttributeError):
        request.callee = "0820000000"  # type: ignore[misc]


# --- versions, payload, SIP headers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "parsed"),
    [
        ("2.9", (2, 9, 0)),
        ("3.0.0", (3, 0, 0)),
        ("4.1", (4, 1, 0)),
        ("v3", (3, 0, 0)),
        (" 3.3.12 ", (3, 3, 12)),
    ],
)
def test_parse_version(version: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(version) == parsed


@pytest.mark.parametrize("version", ["", "latest", "3.x", "3.0.0.1", "3.0.0-rc1", "3,0"])
def test_bad_version_is_a_value_error_naming_it(version: str) -> None:
    with pytest.raises(ValueError, match="is not a version number"):
        parse_version(version)
    with pytest.raises(ValueError, match="is not a version number"):
        payload(dial(), version)


@pytest.mark.parametrize(
    ("version", "key"),
    [
        ("2.9", "call_ref"),
        ("2.99.99", "call_ref"),
        ("3", "contact_ref"),
        ("3.0.0", "contact_ref"),
        ("3.3", "contact_ref"),
        ("4.1", "contact_ref"),
    ],
)
def test_payload_reference_key_by_version(version: str, key: str) -> None:
    request = dial(callee="082 000 1234", outbound_id="27820001234", reference="crm-7")
    assert payload(request, version) == {
        "agent": "1001",
        "callee": "0820001234",
        "outbound_id": "27820001234",
        key: "crm-7",
    }


@pytest.mark.parametrize(("version", "name"), [("3.0.0", "dial_v3.json"), ("4.1", "dial_v3.json"),
                                             ("2.9", "dial_v2.json")])
def test_payload_is_the_documented_body(version: str, name: str) -> None:
    """Exactly the keys (and order) of "Create a Call" for the version, nothing invented."""
    documented = dial_body(name)
    request = dial(agent=documented["agent"], callee=documented["callee"],
                   outbound_id=documented["outbound_id"], reference="crm-42")
    body = payload(request, version)
    assert body == documented
    assert list(body) == list(documented)
    assert not {"callcontact_ref", "contactcall_ref"} & set(body)


@pytest.mark.parametrize("key", ["contact_ref", "call_ref", "custom_call_ref"])
def test_an_error_under_the_reference_key_is_the_reference_field(key: str) -> None:
    assert field_errors_from({"errors": {key: "too long"}}) == ({"reference": "too long"}, "")


@pytest.mark.parametrize(
    ("version", "prefix"),
    [
        ("3.0.0", "X-Platforma"),
        ("3.9.9", "X-Platforma"),
        ("4.0.0", "X-Teleforge"),
        ("4.1", "X-Teleforge"),
    ],
)
def test_sip_headers_by_version(version: str, prefix: str) -> None:
    request = dial(outbound_id="tvc_sale", reference="crm-7")
    assert sip_headers(request, version) == {
        f"{prefix}-Outbound-ID": "tvc_sale",
        f"{prefix}-Contact-Ref": "crm-7",
    }
    assert sip_error_header(version) == f"{prefix}-Error"


# --- reading Teleforge's error answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "fields", "general"),
    [
        (
            {"errors": {"callee": ["invalid number"], "contact_ref": "too long"}},
            {},
            {"callee": "invalid number", "reference": "too long"},
            "",
        ),
        (
            {"errors": [{"field": "outbound_id", "message": "not allowed"}, "try later"]},
            {},
            {"outbound_id": "not allowed"},
            "try later",
        ),
        ({"agent": ["unknown extension"]}, {}, {"agent": "unknown extension"}, ""),
        # A plain value under a field name is an echo, not an error.
        ({"error": "bad request", "agent": "1001"}, {}, {}, "bad request"),
        ({"message": "Invalid callee"}, {}, {"callee": "Invalid callee"}, ""),
        (
            "Invalid outbound_id 0820001234",
            {},
            {"outbound_id": "Invalid outbound_id 0820001234"},
            "",
        ),
        ("agent and callee are the same", {}, {}, "agent and callee are the same"),
        (
            "",
            {"X-Teleforge-Error": "callee: too short, use 10 digits"},
            {"callee": "callee: too short, use 10 digits"},
            "",
        ),
        ({"weird": [1, 2]}, {}, {}, ""),
        ([1, "x"], {}, {}, "1; x"),
        (None, {}, {}, ""),
    ],
)
def test_field_errors_from(
    body: object, headers: dict[str, str], fields: dict[str, str], general: str
) -> None:
    assert field_errors_from(body, headers) == (fields, general)


# --- the client against a real HTTP server --------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeTeleforge:
    """What the stand-in answers next, and every request it received."""

    url: str = ""
    received: list[Recorded] = field(default_factory=list)
    status: int = 200
    body: bytes = b'{"result": "queued"}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def teleforge() -> Iterator[FakeTeleforge]:
    fake = FakeTeleforge()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fake.received.append(
                Recorded("POST", self.path, dict(self.headers), self.rfile.read(length))
            )
            if fake.delay:
                fake.release.wait(fake.delay)
            if fake.drop:
                self.close_connection = True
                return
            try:
                self.send_response(fake.status)
                self.send_header("Content-Type", fake.content_type)
                self.send_header("Content-Length", str(len(fake.body)))
                for name, value in fake.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(fake.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sent_json(fake: FakeTeleforge) -> dict[str, str]:
    (only,) = fake.received
    assert only.method == "POST" and only.path == "/click2dial/calls"
    assert only.headers["Content-Type"] == "application/json"
    return json.loads(only.body)


@pytest.mark.parametrize(
    ("version", "key"),
    [("3.3", "contact_ref"), ("4.1", "contact_ref"), ("2.9", "call_ref")],
)
def test_dial_sends_the_documented_json(teleforge: FakeTeleforge, version: str, key: str) -> None:
    request = dial(
        agent="1001", callee="+27 (82) 123-4567", outbound_id="0820001234", reference="crm-7"
    )
    result = TeleforgeClient(teleforge.url + "/", version, timeout=2).dial(request)

    assert sent_json(teleforge) == {
        "agent": "1001",
        "callee": "0027821234567",
        "outbound_id": "0820001234",
        key: "crm-7",
    }
    assert b'"outbound_id": "0820001234"' in teleforge.received[0].body  # a string: zero kept
    assert (result.status, result.reference, result.body) == (200, "crm-7", {"result": "queued"})


def test_dial_keeps_a_non_json_success_body(teleforge: FakeTeleforge) -> None:
    teleforge.status, teleforge.body, teleforge.content_type = 201, b"OK", "text/plain"
    result = TeleforgeClient(teleforge.url, "4.0", timeout=2).dial(dial())
    assert (result.status, result.body) == (201, "OK")


def fail(fake_url: str, timeout: float = 2.0) -> TeleforgeError:
    with pytest.raises(TeleforgeError) as caught:
        TeleforgeClient(fake_url, "3.3", timeout=timeout).dial(dial())
    return caught.value


def test_4xx_maps_validation_errors_and_keeps_the_body(teleforge: FakeTeleforge) -> None:
    teleforge.status = 422
    teleforge.body = b'{"errors": {"callee": ["number barred"], "contact_ref": ["in use"]}}'
    error = fail(teleforge.url)
    assert (error.kind, error.status) == ("rejected", 422)
    assert error.field_errors == {"callee": "number barred", "reference": "in use"}
    assert error.body == {"errors": {"callee": ["number barred"], "contact_ref": ["in use"]}}
    assert "HTTP 422" in error.message and "number barred" in error.message
    assert not error.may_have_dialled
    assert len(teleforge.received) == 1


def test_4xx_with_unknown_shape_still_reports(teleforge: FakeTeleforge) -> None:
    teleforge.status, teleforge.body, teleforge.content_type = (
        400,
        b"<html>nope</html>",
        "text/html",
    )
    error = fail(teleforge.url)
    assert (error.kind, error.status, error.body) == ("rejected", 400, "<html>nope</html>")
    assert error.field_errors == {}
    assert len(teleforge.received) == 1


def test_4xx_error_header(teleforge: FakeTeleforge) -> None:
    teleforge.status, teleforge.body = 400, b""
    teleforge.headers = {"X-Teleforge-Error": "Invalid outbound_id"}
    assert fail(teleforge.url).field_errors == {"outbound_id": "Invalid outbound_id"}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_a_server_error_sent_once(teleforge: FakeTeleforge, status: int) -> None:
    teleforge.status, teleforge.body, teleforge.content_type = status, b"maintenance", "text/plain"
    error = fail(teleforge.url)
    assert (error.kind, error.status, error.body) == ("server_error", status, "maintenance")
    assert error.may_have_dialled
    assert len(teleforge.received) == 1


def test_timeout_is_reported_once_and_fast(teleforge: FakeTeleforge) -> None:
    teleforge.delay = 3
    started = time.monotonic()
    error = fail(teleforge.url, timeout=0.3)
    assert time.monotonic() - started < 2
    assert error.kind == "timeout"
    assert error.may_have_dialled and "check the board" in error.message
    assert len(teleforge.received) == 1


def test_dropped_connection_is_interrupted_not_retried(teleforge: FakeTeleforge) -> None:
    teleforge.drop = True
    error = fail(teleforge.url)
    assert error.kind == "interrupted" and error.may_have_dialled
    assert len(teleforge.received) == 1


def test_redirect_is_not_followed(teleforge: FakeTeleforge) -> None:
    teleforge.status, teleforge.body = 307, b""
    teleforge.headers = {"Location": "/click2dial/calls"}
    error = fail(teleforge.url)
    assert (error.kind, error.status) == ("unexpected", 307)
    assert len(teleforge.received) == 1


def test_connection_refused(closed_port: int) -> None:
    error = fail(f"http://127.0.0.1:{closed_port}")
    assert error.kind == "refused"
    assert not error.may_have_dialled
    assert "8300" in error.message


def test_unresolvable_host_is_unreachable() -> None:
    error = fail("http://teleforge.invalid:8300")  # .invalid never resolves (RFC 6761)
    assert error.kind == "unreachable"
    assert not error.may_have_dialled


def test_client_refuses_a_bad_version_at_construction() -> None:
    with pytest.raises(ValueError, match="'three'"):
        TeleforgeClient("http://127.0.0.1:8300", "three", timeout=2)
