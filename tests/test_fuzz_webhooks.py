"""Every provider's webhook, fuzzed on PostgreSQL: never a 5xx, and nothing stored is lost.

Hypothesis sends well over 5,000 authenticated deliveries in all (Placetel form posts,
mediaservice JSON callbacks, Stringee answer GETs and event POSTs) built from the providers'
documented samples with fields swapped for hostile values: NUL bytes, Unicode digits
("²", "٣"), numbers past every integer column, NaN, JSON nested thousands deep, lone
surrogates, bytes that are not UTF-8, wrong content types. For each one:

* the answer is below 500;
* a 400 kept exactly one rejected delivery in the event log (the log itself must not fail);
* the calls stored before the fuzzing are, column for column, what they were.

The Flask test client keeps it fast; the database is a fresh PostgreSQL one.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.test import TestResponse

from desk.extensions import db
from desk.models import Call, Delivery
from tests.providers.mediaservice.samples import CALLBACKS as MS_SAMPLES
from tests.providers.mediaservice.samples import load as ms_sample
from tests.services import fresh_postgres_database
from tests.test_input_limits import MEDIASERVICE_DOMAIN, Desk, Senders, count, desk_on

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

STRINGEE_FIXTURES = Path(__file__).parent / "providers" / "stringee" / "fixtures"
# Per provider route (each example is one request): 5,000 in all, a few minutes on two cores.
EXAMPLES = {"placetel": 1500, "mediaservice": 1500, "stringee_answer": 1000,
            "stringee_event": 1000}
assert sum(EXAMPLES.values()) >= 5000
FUZZ_SETTINGS = settings(
    deadline=None, database=None, derandomize=False, print_blob=True,
    suppress_health_check=list(HealthCheck),
)

# -- hostile values -------------------------------------------------------------------------

SPECIAL_TEXT = [
    "\x00", "a\x00b", "²", "٣", "١٢٣", "\uff11\uff12", "\U0001d7d7",  # digits, not ASCII
    "\u202e", "\ufeff", "\r\n", "\t", "%00",
    "NaN", "-1", "-0", "1e309", "0x10", str(2**31), str(2**31 - 1), str(2**63), "9" * 40,
    "x" * 256, "y" * 3000, "", " ", "null", "true", "{}", "[]", "<script>", "' OR 1=1 --",
    "=HYPERLINK(\"x\")", "\\", "sip:", "sip:@", "@", "ann@", "777ann@fpbx.de", "+4689\x00",
    "\udcff", "\ud800x",  # lone surrogates: valid JSON escapes, not encodable text
]
SPECIAL_NUMBERS = [0, -1, 2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**30, 10**300, 1e308,
                   -1e308, 0.5, float("nan"), float("inf"), True, False]
CALL_IDS = ["fz-1", "fz-2", "fz-3", "f4591ba315d81671d7a06c2a3b4f963d",
            "call-vn-1-ZD3IDIXS1J-1515820305477", "9bb07660-c747-11ea-afa0-bd07728b88b7"]
CONTENT_TYPES = [
    "application/json", "application/x-www-form-urlencoded", "text/plain",
    "multipart/form-data", "multipart/form-data; boundary=xyz", None,
    "application/json; charset=latin-1", "application/x-www-form-urlencoded; charset=utf-16",
    "application/" + "x" * 300, "application/json\x00",
]

printable = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
# Calls the fuzzer makes: a few documented ids and many of its own, never the seeded ones.
call_ids = st.one_of(st.sampled_from(CALL_IDS), st.integers(1, 300).map("fz-{}".format))
hostile_text = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    printable,
    st.builds(lambda a, b: a + b, st.sampled_from(CALL_IDS), st.sampled_from(SPECIAL_TEXT)),
    st.integers(-(2**70), 2**70).map(str),
)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], percent: int = 80,
           ) -> st.SearchStrategy[Any]:
    """``usual`` ``percent`` % of the time, else ``odd``: enough deliveries get past the
    parser to reach the state machine, routing and the event log."""
    return st.integers(0, 99).flatmap(lambda n: usual if n < percent else odd)


def nested(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


json_leaf = st.one_of(st.none(), st.sampled_from(SPECIAL_NUMBERS), hostile_text,
                      st.integers(), st.floats())
hostile_json = st.one_of(
    json_leaf,
    st.recursive(json_leaf, lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(printable, children, max_size=3)),
        max_leaves=8),
    st.builds(nested, st.sampled_from([63, 64, 65, 200, 3000]), json_leaf,
              st.sampled_from(["list", "dict"])),
)
raw_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda a, b: a + b"\x00" + b, st.binary(max_size=40), st.binary(max_size=40)),
    st.sampled_from([b"[" * 50_000 + b"]" * 50_000, b'{"a": NaN}', b"1" * 5000,
                     b'{"sessionId": "fz-1", "sessionDuration": ' + b"9" * 5000 + b"}",
                     b'"\\ud800"', b"\xff\xfe{\x00}", b"{}", b"[]", b"null"]),
)


def dumps(value: Any) -> bytes:
    """JSON as a provider might send it (NaN and Infinity as Python writes them); values
    too deep for the encoder are written by hand."""
    try:
        return json.dumps(value).encode("utf-8", errors="surrogatepass")
    except (RecursionError, ValueError):
        return b"[" * 3000 + b"1" + b"]" * 3000


@st.composite
def mutated(draw: st.DrawFn, sample: dict[str, Any], call_keys: tuple[str, ...]) -> Any:
    """``sample`` with some fields replaced by hostile values, some dropped, some added."""
    body = copy.deepcopy(sample)
    keys = sorted(body)
    for key in draw(mostly(st.just([]), st.lists(st.sampled_from(keys), max_size=4), 40)):
        body[key] = draw(hostile_json)
    for key in draw(mostly(st.just([]), st.lists(st.sampled_from(keys), max_size=2), 80)):
        body.pop(key, None)
    if draw(mostly(st.just(False), st.just(True), 80)):
        body[draw(hostile_text)] = draw(hostile_json)
    for key in call_keys:  # fuzzed calls, never the seeded ones
        if key in body and draw(st.booleans()):
            body[key] = draw(mostly(call_ids, hostile_text))
    return body if draw(st.integers(0, 9)) else draw(hostile_json)  # sometimes not an object


# -- the desk, seeded -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with fresh_postgres_database() as url:
        yield desk_on(url, tmp_path_factory.mktemp("fuzz-webhooks"))
        db.dispose()


def stringee_sample(name: str) -> dict[str, Any]:
    data = json.loads((STRINGEE_FIXTURES / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


def seed(send: Senders) -> None:
    """Calls of every provider, in several states, stored before the fuzzing starts."""
    ok = [
        send.placetel({"event": "IncomingCall", "call_id": "seed-pt-1", "from": "0221",
                       "to": "0301"}),
        send.placetel({"event": "CallAccepted", "call_id": "seed-pt-1",
                       "peer": "777ann@fpbx.de"}),
        send.placetel({"event": "IncomingCall", "call_id": "seed-pt-2", "from": "0222",
                       "to": "0301"}),
        send.placetel({"event": "HungUp", "call_id": "seed-pt-2", "type": "missed",
                       "duration": "0"}),
        send.stringee_answer("project", {"from": "user_1", "to": "0916983188",
                                         "userId": "user_1", "callId": "seed-st-1"}),
    ]
    for name in ("call_event_started", "call_event_answered_phone_to_app",
                 "call_event_ended_phone_to_app"):
        ok.append(send.stringee_event({**stringee_sample(name), "call_id": "seed-st-2"}))
    legs = {"participantId": "seed-leg-1", "remoteParticipantId": "seed-leg-2"}
    for name in ("newCall", "callNotify"):
        body = {**ms_sample(name), "sessionId": "seed-ms-1"}
        body.update({k: v for k, v in legs.items() if k in body})
        ok.append(send.mediaservice(name, body))
    assert [r.status_code for r in ok] == [200] * len(ok), [r.get_data()[:200] for r in ok]


def snapshot(desk: Desk) -> dict[int, dict[str, Any]]:
    with desk.app.app_context():
        columns = [c.key for c in Call.__table__.columns]
        return {call.id: {name: getattr(call, name) for name in columns}
                for call in db.session.scalars(select(Call).order_by(Call.id))}


@pytest.fixture(scope="module")
def seeded(desk: Desk) -> Iterator[tuple[Senders, dict[int, dict[str, Any]]]]:
    send = Senders(desk)
    seed(send)
    before = snapshot(desk)
    assert len(before) >= 4
    yield send, before
    after = snapshot(desk)
    changed = {i: (before[i], after.get(i)) for i in before if after.get(i) != before[i]}
    assert not changed, f"calls stored before the fuzzing changed: {changed}"


# -- the fuzzer -------------------------------------------------------------------------------

STATUSES: dict[str, Counter[int]] = {}


def check(desk: Desk, route: str, request: Callable[[], TestResponse]) -> None:
    """Send one delivery; below 500, and a 400 is kept as one rejected delivery."""
    rejected = count(desk.app, Delivery, status="rejected")
    response = request()
    STATUSES.setdefault(route, Counter())[response.status_code] += 1
    assert response.status_code < 500, (route, response.get_data()[:300])
    if response.status_code == 400:
        assert count(desk.app, Delivery, status="rejected") == rejected + 1, (
            route, "a 400 without a kept delivery", response.get_data()[:300])


def test_placetel_notify(seeded: tuple[Senders, dict[int, Any]]) -> None:
    send, _ = seeded
    events = st.sampled_from(["IncomingCall", "OutgoingCall", "CallAccepted", "HungUp"])
    def field(*usual: str) -> st.SearchStrategy[str]:
        return mostly(st.sampled_from(usual), hostile_text, 75)

    form = st.fixed_dictionaries(
        {"event": mostly(events, hostile_text, 90),
         "call_id": mostly(call_ids, hostile_text, 90)},
        optional={"from": field("0221", "022129191999", "+4930123"), "to": field("0301"),
                  "peer": field("777ann@fpbx.de", "sip:777bob@fpbx.de"),
                  "type": field("missed", "accepted", "voicemail", "busy"),
                  "duration": field("0", "5", "9999999"), "direction": field("in", "out"),
                  "extra": field("x")},
    )
    body = mostly(
        form.map(lambda f: urlencode(f, errors="surrogatepass").encode()),
        st.one_of(
            form.map(lambda f: urlencode(f, errors="surrogatepass").encode() + b"&\x00=1"),
            form.map(dumps), raw_bytes,
        ), 85,
    )
    content_type = mostly(st.just("application/x-www-form-urlencoded"),
                          st.sampled_from(CONTENT_TYPES), 90)

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES["placetel"])
    @given(body=body, content_type=content_type)
    def fuzz(body: bytes, content_type: str | None) -> None:
        check(send.desk, "placetel", lambda: send.placetel(body, content_type))

    fuzz()
    assert sum(STATUSES["placetel"].values()) >= EXAMPLES["placetel"]
    assert {200, 400} <= set(STATUSES["placetel"]), STATUSES["placetel"]


def test_mediaservice_callbacks(seeded: tuple[Senders, dict[int, Any]]) -> None:
    send, _ = seeded
    samples = {name: ms_sample(name) for name in MS_SAMPLES}
    call_keys = ("sessionId", "participantId", "remoteParticipantId", "callerParticipantId",
                 "calleeParticipantId", "sessionReferenceId")

    @st.composite
    def callback(draw: st.DrawFn) -> tuple[str, bytes]:
        name = draw(st.sampled_from(sorted(samples)))
        path = MEDIASERVICE_DOMAIN if name == "alarm" else name
        if draw(st.integers(0, 19)) == 0:
            path = draw(st.sampled_from(["nosuch", "a.b", "%00", "callNotify/x", "x" * 300]))
        if draw(st.integers(0, 9)) == 0:
            return path, draw(raw_bytes)
        return path, dumps(draw(mutated(samples[name], call_keys)))

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES["mediaservice"])
    @given(callback=callback(), content_type=mostly(st.just("application/json"),
                                                    st.sampled_from(CONTENT_TYPES), 90))
    def fuzz(callback: tuple[str, bytes], content_type: str | None) -> None:
        path, body = callback
        check(send.desk, "mediaservice", lambda: send.mediaservice(path, body, content_type))

    fuzz()
    assert sum(STATUSES["mediaservice"].values()) >= EXAMPLES["mediaservice"]
    assert {200, 400} <= set(STATUSES["mediaservice"]), STATUSES["mediaservice"]


STRINGEE_PARAMS = ("from", "to", "callId", "uuid", "userId", "fromInternal", "custom",
                   "projectId", "appToPhone", "timeout", "maxConnectTime", "peerToPeerCall",
                   "record", "recordFormat", "phoneToPhone", "to_number", "stringeeNumber")


def test_stringee_answer_urls(seeded: tuple[Senders, dict[int, Any]]) -> None:
    send, _ = seeded
    value = mostly(st.sampled_from(
        ["user_1", "0916983188", "84909986668", "true", "false", "auto", "30", "mp3", "fz-1"]),
        hostile_text, 70)
    params = st.dictionaries(mostly(st.sampled_from(STRINGEE_PARAMS), printable, 90), value,
                             max_size=6)

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES["stringee_answer"])
    @given(kind=st.sampled_from(["project", "number"]), params=params)
    def fuzz(kind: str, params: dict[str, str]) -> None:
        params = {k.encode("utf-8", "surrogatepass").decode("utf-8", "replace"):
                  v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                  for k, v in params.items() if k != "token"}
        check(send.desk, "stringee_answer", lambda: send.stringee_answer(kind, params))

    fuzz()
    assert sum(STATUSES["stringee_answer"].values()) >= EXAMPLES["stringee_answer"]
    assert {200, 400} <= set(STATUSES["stringee_answer"]), STATUSES["stringee_answer"]


def test_stringee_events(seeded: tuple[Senders, dict[int, Any]]) -> None:
    send, _ = seeded
    samples = [stringee_sample(p.stem) for p in sorted(STRINGEE_FIXTURES.glob("*.json"))]
    body = mostly(
        st.sampled_from(samples).flatmap(
            lambda s: mutated(s, ("call_id", "request_from_user_id"))).map(dumps),
        raw_bytes, 90,
    )

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES["stringee_event"])
    @given(body=body, content_type=mostly(st.just("application/json"),
                                          st.sampled_from(CONTENT_TYPES), 90))
    def fuzz(body: bytes, content_type: str | None) -> None:
        check(send.desk, "stringee_event", lambda: send.stringee_event(body, content_type))

    fuzz()
    assert sum(STATUSES["stringee_event"].values()) >= EXAMPLES["stringee_event"]
    assert {200, 400} <= set(STATUSES["stringee_event"]), STATUSES["stringee_event"]
