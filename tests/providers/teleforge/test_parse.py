"""Teleforge's notifications, read by ``desk.providers.teleforge.parse``: CDRs and inbound calls.

The items are the fixtures in ``fixtures/`` (built from Teleforge's documented field lists;
``fixtures/README.md`` says which page each comes from), plus variations of them for the
rules the desk decides itself (how a CDR's codes become an outcome, which id a call is keyed
by, which times are trusted).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desk.domain.events import Parsed
from desk.providers.teleforge.parse import Notification, UnknownNotification, parse_notification
from tests.teleforge_standin import FIXTURES, fixture

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DIALED = datetime(2026, 3, 2, 9, 28, tzinfo=UTC)  # dialed_at 1772443680 in the fixtures


def read(name: str, **payload: Any) -> Notification:
    """A fixture as pushed (``_source`` dropped), ``payload`` changed, parsed at ``NOW``."""
    document = fixture(name)
    document.pop("_source")
    document["payload"].update(payload)
    parsed = parse_notification(json.dumps(document), NOW)
    assert isinstance(parsed, Notification), parsed
    return parsed


def unknown(raw: str | bytes) -> UnknownNotification:
    result = parse_notification(raw, NOW)
    assert isinstance(result, UnknownNotification), result
    return result


# --- the fixtures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "direction", "kinds", "cause", "duration", "call_time"),
    [
        ("cdr_v3_outbound_answered.json", "crm-42", "outbound", ["dialling", "ended"],
         "hungup", None, 95),
        ("cdr_v3_outbound_busy.json", "crm-43", "outbound", ["dialling", "ended"], "busy", 0,
         None),
        ("cdr_v3_outbound_no_answer.json", "crm-44", "outbound", ["dialling", "ended"],
         "no_answer", 0, None),
        ("cdr_v3_inbound_answered.json", "tf-in-7e9d", "inbound", ["ringing", "ended"],
         "callee_hungup", None, 200),
        ("cdr_v3_inbound_abandoned.json", "tf-in-0a0b", "inbound", ["ringing", "ended"],
         "missed", 0, None),
        ("cdr_v2_outbound_answered.json", "crm-42", "outbound", ["dialling", "ended"],
         "hungup", None, 95),
        ("cdr_v2_reference_in_call_ref.json", "crm-42", "outbound", ["dialling", "ended"],
         "hungup", None, 95),
        ("call_v3_inbound.json", "tf-in-7e9d", "inbound", ["ringing", "answered"], None, None,
         None),
        ("call_v2_inbound.json", "tf-in-7e9d", "inbound", ["ringing", "answered"], None, None,
         None),
    ],
)
def test_every_fixture_is_read(
    name: str, key: str, direction: str, kinds: list[str], cause: str | None,
    duration: int | None, call_time: int | None,
) -> None:
    parsed = read(name)
    assert parsed.kind == fixture(name)["type"]
    assert parsed.provider_call_id == key
    assert [e.kind for e in parsed.events] == kinds
    assert {(e.provider, e.provider_call_id, e.direction) for e in parsed.events} == {
        ("teleforge", key, direction)}
    last = parsed.events[-1]
    assert (last.end_cause, last.duration) == (cause, duration)
    assert parsed.call_time == call_time


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("c*.json")), ids=lambda p: p.name)
def test_the_source_note_in_a_fixture_file_is_ignored(path: Any) -> None:
    stored = parse_notification(path.read_bytes(), NOW)
    assert isinstance(stored, Notification)
    as_pushed = read(path.name)
    assert (stored.kind, stored.provider_call_id, stored.events, stored.facts) == (
        as_pushed.kind, as_pushed.provider_call_id, as_pushed.events, as_pushed.facts)


def test_an_answered_outbound_cdr() -> None:
    parsed = read("cdr_v3_outbound_answered.json")
    start, end = parsed.events
    # dialed_at is when the call started; call_time runs from there, ringing included.
    assert start.at == DIALED and end.at == DIALED + timedelta(seconds=95)
    assert (end.from_number, end.to_number, end.answered_by) == ("101", "0820001234", "101")
    assert end.duration is None  # the fold decides: the desk may know when it was answered
    assert parsed.facts == {
        "call_ref": "tf-1a2b3c4d", "contact_ref": "crm-42", "end_reason": "hungup",
        "end_code": 16, "call_time": 95, "hold_time": 0,
        "recording_url": "ftp://pbx.example.com/recordings/tf-1a2b3c4d.wav",
    }


def test_a_busy_cdr_keeps_the_agent_and_no_talk() -> None:
    parsed = read("cdr_v3_outbound_busy.json")
    end = parsed.ended
    assert end is not None
    assert (end.end_cause, end.duration, end.answered_by) == ("busy", 0, "101")
    assert parsed.facts["call_time"] == 6 and "recording_url" not in parsed.facts  # "" dropped


def test_before_v3_the_clients_number_is_in_ref() -> None:
    end = read("cdr_v2_outbound_answered.json").ended
    assert end is not None and (end.from_number, end.to_number) == ("101", "0820001234")
    # From v3.0.0 "ref" is "click-dial", never a number.
    end = read("cdr_v3_outbound_answered.json", number=None).ended
    assert end is not None and end.to_number is None


def test_an_inbound_call_item_answers_the_call_for_the_agent() -> None:
    parsed = read("call_v3_inbound.json")
    queued, answered = parsed.events
    # No time in the item: it is pushed when the agent is bridged, after hold_time queued.
    assert queued.at == NOW - timedelta(seconds=12) and answered.at == NOW
    assert (answered.answered_by, answered.from_number, answered.to_number) == (
        "102", "0215550123", "27215550100")
    assert parsed.facts == {"call_ref": "tf-in-7e9d", "queue_hold_time": 12}


def test_an_inbound_calls_cdr_is_keyed_like_its_call_item() -> None:
    call, cdr = read("call_v3_inbound.json"), read("cdr_v3_inbound_answered.json")
    assert call.provider_call_id == cdr.provider_call_id == "tf-in-7e9d"
    end = cdr.ended
    assert end is not None
    assert (end.from_number, end.to_number, end.answered_by) == (
        "0215550123", "27215550100", "102")
    # An IVR-typed contact_ref does not change which call it is.
    assert read("cdr_v3_inbound_answered.json", contact_ref="acct-9").provider_call_id == (
        "tf-in-7e9d")


def test_a_caller_who_gave_up_in_the_queue_is_missed_by_nobody() -> None:
    end = read("cdr_v3_inbound_abandoned.json").ended
    assert end is not None
    assert (end.end_cause, end.answered_by, end.duration) == ("missed", None, 0)


# --- which call, which direction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "key", "direction"),
    [
        ({"call_dir": "outbound", "contact_ref": "crm-1", "call_ref": "tf-1"}, "crm-1",
         "outbound"),
        ({"call_dir": "outbound", "contact_ref": "", "call_ref": "tf-1"}, "tf-1", "outbound"),
        ({"call_dir": "inbound", "contact_ref": "acct-1", "call_ref": "tf-1"}, "tf-1", "inbound"),
        ({"call_dir": "inbound", "contact_ref": "acct-1", "call_ref": ""}, "acct-1", "inbound"),
        ({"call_dir": "OUTBOUND", "contact_ref": "crm-1", "call_ref": "tf-1"}, "crm-1",
         "outbound"),
        ({"call_dir": None, "campaign_ref": "inbound", "contact_ref": "x", "call_ref": "tf-1"},
         "tf-1", "inbound"),
        ({"call_dir": None, "contact_ref": "crm-1", "call_ref": 77}, "crm-1", None),
        ({"call_dir": "sideways", "contact_ref": None, "call_ref": 77}, "77", None),
    ],
)
def test_which_call_a_cdr_belongs_to(payload: dict[str, Any], key: str,
                                     direction: str | None) -> None:
    parsed = read("cdr_v3_outbound_answered.json", **payload)
    assert parsed.provider_call_id == key
    assert {e.direction for e in parsed.events} == {direction}


def test_a_dialler_campaigns_call_item_is_an_outbound_call() -> None:
    """The inbound page: its item is the Teleforge Dialler's call connection too."""
    parsed = read("call_v2_inbound.json", campaign_ref="spring-sale", contact_ref="crm-9")
    assert parsed.provider_call_id == "crm-9"
    (answered,) = parsed.events
    assert (answered.kind, answered.direction, answered.from_number, answered.to_number) == (
        "answered", "outbound", "102", "0215550123")


def test_a_call_item_without_a_direction_is_inbound() -> None:
    parsed = read("call_v3_inbound.json", call_dir=None, contact_ref="acct-1")
    assert parsed.provider_call_id == "tf-in-7e9d"
    assert {e.direction for e in parsed.events} == {"inbound"}


# --- how a CDR ends the call -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end_reason", "end_code", "call_time", "cause", "talked"),
    [
        ("hungup", 16, 95, "hungup", True),
        ("callee_hungup", 16, 30, "callee_hungup", True),
        ("agent_hungup", 0, 30, "agent_hungup", True),
        ("hungup", 16, 0, "no_answer", False),  # nobody talked, nothing rang
        ("busy", 17, 5, "busy", False),
        ("reject", 19, 5, "rejected", False),  # Teleforge files 19 under reject
        ("reject", 21, 5, "rejected", False),
        ("timeout", 18, 45, "no_answer", False),
        ("timeout", 102, 45, "no_answer", False),
        ("voicemail", 16, 40, "voicemail", False),
        ("error", 34, 2, "failed", False),
        ("failed", None, 0, "failed", False),
        # Raw dispositions (Click2Dial before v2.3.0).
        ("ANSWER", 16, 60, None, True),
        ("BUSY", 17, 5, "busy", False),
        ("NOANSWER", 19, 45, "no_answer", False),
        ("CANCEL", 16, 20, "cancelled", False),
        ("CONGESTION", 34, 1, "congestion", False),
        ("CHANUNAVAIL", 20, 1, "unavailable", False),
        ("DONTCALL", 21, 1, "rejected", False),
        ("TORTURE", 21, 1, "rejected", False),
        ("INVALIDARGS", None, 0, "failed", False),
        # Only the code says it.
        (None, 17, 5, "busy", False),
        (None, 18, 5, "no_answer", False),
        (None, 19, 5, "no_answer", False),
        (None, 21, 5, "rejected", False),
        (None, 16, 12, None, True),
        ("", "16", 12, None, True),  # a code sent as text
        (None, 34, 12, "failed", False),
        (None, None, 12, "failed", False),
        ("hungup", None, 12, "hungup", True),
        ("teleported", 16, 12, None, True),  # an unknown word: the code decides
        ("teleported", None, 12, "failed", False),
    ],
)
def test_cdr_outcomes(end_reason: str | None, end_code: Any, call_time: int,
                      cause: str | None, talked: bool) -> None:
    parsed = read("cdr_v3_outbound_answered.json", end_reason=end_reason, end_code=end_code,
                  call_time=call_time)
    end = parsed.ended
    assert end is not None
    assert end.end_cause == cause
    assert (parsed.call_time, end.duration) == ((call_time, None) if talked else (None, 0))


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialed_at", "started"),
    [
        (1772443680, DIALED),
        ("1772443680", DIALED),
        (1772443680.4, DIALED + timedelta(milliseconds=400)),
        (0, None),  # implausible: the arrival time is used
        (1772443800 + 3600, None),  # an hour ahead of the desk
        (1772443800 - 8 * 86400, None),  # more than a week old
        (True, None),
        ("yesterday", None),
        (None, None),
        (float("inf"), None),
    ],
)
def test_cdr_times(dialed_at: Any, started: datetime | None) -> None:
    start, end = read("cdr_v3_outbound_answered.json", dialed_at=dialed_at).events
    if started is None:  # it ended when it arrived, call_time seconds after it started
        assert (start.at, end.at) == (NOW - timedelta(seconds=95), NOW)
    else:
        assert (start.at, end.at) == (started, started + timedelta(seconds=95))


def test_a_cdr_that_would_end_in_the_future_ends_on_arrival() -> None:
    start, end = read("cdr_v3_outbound_answered.json", dialed_at=1772443790,
                      call_time=600).events
    assert end.at == NOW and start.at == NOW - timedelta(seconds=600)


def test_a_naive_arrival_time_is_taken_as_utc() -> None:
    parsed = parse_notification(json.dumps({"type": "call", "payload": {"call_ref": "x"}}),
                                NOW.replace(tzinfo=None))
    assert isinstance(parsed, Notification) and parsed.events[-1].at == NOW


# --- duplicates --------------------------------------------------------------------------------


def test_the_same_item_again_is_a_duplicate_and_a_different_one_is_not() -> None:
    first = read("cdr_v3_outbound_answered.json")
    assert read("cdr_v3_outbound_answered.json").dedupe_key == first.dedupe_key
    document = fixture("cdr_v3_outbound_answered.json")
    document.pop("_source")
    reordered = {"payload": dict(reversed(list(document["payload"].items()))), "type": "cdr"}
    again = parse_notification(json.dumps(reordered, indent=4), NOW)
    assert isinstance(again, Parsed) and again.dedupe_key == first.dedupe_key
    assert read("cdr_v3_outbound_answered.json", recording_url="").dedupe_key != first.dedupe_key
    call, cdr = read("call_v3_inbound.json"), read("cdr_v3_inbound_answered.json")
    assert call.provider_call_id == cdr.provider_call_id and call.dedupe_key != cdr.dedupe_key
    assert first.dedupe_key.startswith("cdr:") and len(first.dedupe_key) <= 320


# --- what is not a notification ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason", "reference"),
    [
        # The shapes the desk used to guess at, before Teleforge's pages were checked.
        ('{"callcontact_ref": "crm-7", "status": "ringing"}', "not a Teleforge notification",
         None),
        ("callcontact_ref=crm-7&status=ringing", "not JSON", None),
        ('{"type": "hangup", "payload": {"contact_ref": "crm-7"}}',
         "unknown notification type 'hangup'", "crm-7"),
        ('{"type": "cdr", "payload": {"call_dir": "outbound"}}', "without call_ref or contact_ref",
         None),
        ('{"type": "call", "payload": {"call_ref": "", "contact_ref": ""}}',
         "without call_ref or contact_ref", None),
        ('{"type": "cdr", "payload": {"call_ref": "a\\u0000b"}}', "without call_ref", None),
        ('{"type": "cdr", "payload": {"call_ref": {"id": 1}}}', "without call_ref", None),
        ('{"type": "cdr", "payload": "call_ref=x"}', "not a Teleforge notification", None),
        ('{"type": 7, "payload": {"call_ref": "x"}}', "not a Teleforge notification", None),
        ('{"payload": {"call_ref": "x"}}', "not a Teleforge notification", None),
        ('[{"type": "cdr", "payload": {"call_ref": "x"}}]', "got list", None),
        ('"cdr"', "got str", None),
        ("42", "got int", None),
        ("null", "got NoneType", None),
        ('{"type": "cdr", "payload": ', "not JSON", None),
        ("", "empty", None),
        ("  \n ", "empty", None),
        (b"\xff\xfe{\x00", "not UTF-8", None),
        (b'{"type": "cdr", "payload": {"call_ref": "caf\xe9"}}', "not UTF-8", None),
        ("[" * 200_000, "nested too deeply", None),
    ],
)
def test_unknown_notifications_are_kept_with_a_reason(
    raw: str | bytes, reason: str, reference: str | None
) -> None:
    result = unknown(raw)
    assert reason in result.reason
    assert result.raw is raw  # kept exactly as popped
    assert result.received_at == NOW
    assert result.reference == reference


def test_unknown_bytes_are_readable_in_the_log() -> None:
    result = unknown(b"\xff{status}")
    assert result.text == "\\xff{status}"


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_parse_notification_never_raises(raw: bytes | str) -> None:
    result = parse_notification(raw, NOW)
    assert isinstance(result, Notification | UnknownNotification)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
                    st.text(max_size=20), st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_FIELDS = st.sampled_from(["extension", "number", "dial_number", "call_ref", "contact_ref",
                           "dialed_at", "end_reason", "end_code", "call_time", "hold_time",
                           "call_dir", "recording_url", "ref", "campaign_ref"])


@given(st.sampled_from(["cdr", "call", "CDR"]), st.dictionaries(_FIELDS, _VALUES))
def test_any_payload_of_a_known_type_never_raises(kind: str, payload: dict[str, Any]) -> None:
    result = parse_notification(json.dumps({"type": kind, "payload": payload}), NOW)
    assert isinstance(result, Notification | UnknownNotification)
    if isinstance(result, Notification):
        assert result.provider_call_id and len(result.provider_call_id) <= 255
        assert all(NOW - timedelta(days=8) <= e.at <= NOW + timedelta(minutes=5)
                   for e in result.events)
