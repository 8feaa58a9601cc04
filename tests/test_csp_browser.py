"""The Content-Security-Policy in headless Chromium: the agent board, the wallboard and the
supervisor's pages run with no violation while calls arrive live, and the policy really
blocks what an injected script or style would try (``desk.web.security``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser

# Every violation is also a DOM event; report it on the console, where Chromium writes its
# own "Refused to ..." line, so one listener sees both, across page loads.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("csp-violation " + e.effectiveDirective + " " + e.blockedURI + " at " +
                e.sourceFile + ":" + e.lineNumber);
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("csp") / "desk.sqlite3"
    # One ended call shown, so the second one to end must be hidden by desk.js (this was an
    # inline <style> before the policy).
    env = desk_env(f"sqlite:///{path}", DESK_ENDED_CALLS_SHOWN="1")
    with running_desk(env, PASSWORD) as live:
        yield live


@pytest.fixture
def violations(page: Page) -> list[str]:
    seen: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", lambda message: seen.append(message.text)
            if "csp-violation" in message.text or "Content Security Policy" in message.text
            else None)
    return seen


def log_in(page: Page, server: LiveServer, path: str, name: str) -> None:
    page.goto(server.url + path)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(server.url + path)
    expect(page.locator("#live-status")).to_have_text("live")


def test_the_agent_board_runs_live_without_violations(
    page: Page, server: LiveServer, violations: list[str]
) -> None:
    log_in(page, server, "/", "ann")
    queue = page.locator("#calls-queue .call")
    server.placetel(event="IncomingCall", call_id="csp-1", to="0221", **{"from": "022129191999"})
    expect(queue).to_have_count(1)
    with page.expect_response("**/presence"):
        page.get_by_label("Your presence").select_option("away")  # an htmx request
    server.placetel(event="CallAccepted", call_id="csp-1", peer="777ann@fpbx.de")
    expect(page.locator("#calls-mine .call")).to_have_count(1)
    server.placetel(event="HungUp", call_id="csp-1", type="accepted", duration="30")
    ended = page.locator("#calls-ended .call")
    expect(ended).to_have_count(1)
    expect(ended.first).to_be_visible()

    server.placetel(event="IncomingCall", call_id="csp-2", to="0221", **{"from": "0301"})
    server.placetel(event="HungUp", call_id="csp-2", type="missed")
    expect(ended).to_have_count(2)
    expect(ended.first).to_contain_text("0301")
    expect(ended.first).to_be_visible()
    expect(ended.nth(1)).to_be_hidden()  # past DESK_ENDED_CALLS_SHOWN
    expect(page.locator("#live-status")).to_have_text("live")
    assert violations == []


def test_the_wallboard_and_supervisor_pages_run_without_violations(
    page: Page, server: LiveServer, violations: list[str]
) -> None:
    log_in(page, server, "/wallboard", "sue")
    expect(page.locator("#wallboard-chart canvas")).to_have_count(1)  # uPlot drew
    waiting = page.locator('#wallboard-counters [data-counter="waiting"]')
    expect(waiting).to_have_text("0")
    server.placetel(event="IncomingCall", call_id="csp-wb", to="0221", **{"from": "0401"})
    expect(waiting).to_have_text("1")
    server.placetel(event="HungUp", call_id="csp-wb", type="missed")
    expect(waiting).to_have_text("0")
    assert violations == []

    for path in ("/supervisor", "/history", "/audit", "/routing"):
        page.goto(server.url + path)
        expect(page.locator("main")).to_be_visible()
    expect(page.locator(".routing-grid")).to_have_css("display", "grid")  # its CSS applies
    page.goto(server.url + "/history")
    page.locator("a[href^='/calls/']").first.click()
    expect(page.locator("h1")).to_contain_text("0221")
    assert violations == []


def test_the_policy_blocks_injected_scripts_and_styles(
    page: Page, server: LiveServer, violations: list[str]
) -> None:
    page.goto(server.url + "/login")
    with page.expect_console_message(lambda m: "csp-violation script-src" in m.text):
        page.evaluate("""() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.head.appendChild(script);
        }""")
    assert page.evaluate("() => window.injected") is None
    with page.expect_console_message(lambda m: "csp-violation style-src" in m.text):
        page.evaluate("""() => document.head.insertAdjacentHTML(
            "beforeend", "<style>body { display: none }</style>")""")
    expect(page.locator("body")).to_be_visible()
