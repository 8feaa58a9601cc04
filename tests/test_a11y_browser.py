"""Accessibility of every page, in headless Chromium with axe-core (npm, devDependency).

Each page is loaded with live calls on the desk (ringing, talking, missed, answered, closed
by a supervisor), as the person who would see it, and checked by axe at a desk's width and
at 320 px: no violation of impact *serious* or *critical* (contrast, names, labels, ARIA),
exactly one ``<h1>``, the favicon found, no request of the page failing and nothing on the
console. With embedding on (``DESK_EMBED_ORIGINS``) the login page and the board are checked
too: they carry the popup-login block and the pop-out button.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, Response, expect

from tests.browser import console_errors, count_frames, log_in, wait_live
from tests.conftest import IN_CI, PASSWORD
from tests.servers import ROOT, LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 320)

# axe.run resolves to its results; only what a person would be stopped by is kept.
RUN_AXE = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary) }));
}"""


@pytest.fixture(scope="module")
def axe_source() -> Path:
    if not AXE.exists():
        message = f"{AXE} is missing: run `make assets` (npm ci installs axe-core)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE


def _calls(server: LiveServer) -> dict[str, int]:
    """Calls in every state a board shows; their desk ids by name."""
    hooks: list[dict[str, str]] = [
        {"event": "IncomingCall", "call_id": "ax-ring", "from": "022129191999", "to": "0221"},
        {"event": "IncomingCall", "call_id": "ax-talk", "from": "0301234567", "to": "0221"},
        {"event": "CallAccepted", "call_id": "ax-talk", "peer": "777ann@fpbx.de"},
        {"event": "IncomingCall", "call_id": "ax-missed", "from": "0302", "to": "0221"},
        {"event": "HungUp", "call_id": "ax-missed", "type": "missed", "duration": "0"},
        {"event": "IncomingCall", "call_id": "ax-done", "from": "0303", "to": "0221"},
        {"event": "CallAccepted", "call_id": "ax-done", "peer": "777ann@fpbx.de"},
        {"event": "HungUp", "call_id": "ax-done", "type": "accepted", "duration": "75"},
        {"event": "IncomingCall", "call_id": "ax-close", "from": "0304", "to": "0221"},
    ]
    for hook in hooks:
        assert server.placetel(**hook).ok
    sue = server.login("sue", PASSWORD)
    ids = {}
    for name, number in [("talk", "0301234567"), ("close", "0304"), ("done", "0303")]:
        page = sue.get(server.url + "/history", params={"number": number}, timeout=10).text
        ids[name] = int(re.findall(r'id="history-(\d+)"', page)[0])
    # A supervisor closes one on the desk: the audit log has an entry, its page a reason.
    board = sue.get(server.url + "/supervisor", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', board).group(1)  # type: ignore[union-attr]
    closed = sue.post(f"{server.url}/calls/{ids['close']}/close", headers={"X-CSRFToken": token},
                      timeout=10)
    assert closed.ok, closed.text
    return ids


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    path = tmp_path_factory.mktemp("a11y") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        yield live, _calls(live)


@pytest.fixture(scope="module")
def embedding_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("a11y-embed") / "desk.sqlite3"
    env = desk_env(f"sqlite:///{path}", DESK_EMBED_ORIGINS="http://localhost:9")
    with running_desk(env, PASSWORD) as live:
        yield live


def check_page(page: Page, url: str, who: str | None, path: str, axe: Path,
               status: int = 200) -> None:
    """Open ``path`` as ``who`` (None: logged out) and hold it to every rule of this module."""
    page.context.add_init_script(path=str(axe))
    count_frames(page)
    failed: list[str] = []

    def note(response: Response) -> None:
        if response.status >= 400 and response.url != url + path:
            failed.append(f"{response.status} {response.url}")

    page.on("response", note)
    errors = console_errors(page)
    if who is None:
        answer = page.goto(url + path)
        assert answer is not None and answer.status == status
    else:
        log_in(page, url, who, PASSWORD, path)
    if page.locator("#live-status").count():
        wait_live(page)
    expect(page.locator("h1")).to_have_count(1)

    found: dict[int, Any] = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        found[width] = page.evaluate(RUN_AXE)
    indent = "\n      "
    report = "\n".join(
        f"  at {width}px: {v['id']} ({v['impact']}) {v['help']}{indent}" + indent.join(v["nodes"])
        for width, violations in found.items() for v in violations
    )
    assert not report, f"axe found serious or critical violations on {path}:\n{report}"
    icon = page.locator('link[rel="icon"]')
    expect(icon).to_have_attribute("type", "image/svg+xml")
    assert not failed, f"requests of {path} that failed: {failed}"
    if status != 200:  # the page's own answer is on the console as a failed load
        errors = [e for e in errors if f"status of {status}" not in e]
    assert not errors, f"console errors on {path}: {errors}"


PAGES = [
    ("ann", "/"),
    ("ann", "/calls/{talk}"),
    ("ann", "/history"),
    ("sue", "/supervisor"),
    ("sue", "/wallboard"),
    ("sue", "/audit"),
    ("sue", "/routing"),
    ("sue", "/routing?from=022129191999&to=0221&via=placetel"),
    ("sue", "/calls/{close}"),
    ("sue", "/calls/{done}"),
    ("sue", "/history"),
    (None, "/login"),
]


@pytest.mark.parametrize(("who", "path"), PAGES, ids=[f"{w}:{p}" for w, p in PAGES])
def test_page_has_no_serious_violations(
    page: Page, desk: tuple[LiveServer, dict[str, int]], axe_source: Path, who: str | None,
    path: str,
) -> None:
    server, ids = desk
    check_page(page, server.url, who, path.format(**ids), axe_source)


def test_error_page_has_no_serious_violations(
    page: Page, desk: tuple[LiveServer, dict[str, int]], axe_source: Path
) -> None:
    server, _ = desk
    check_page(page, server.url, None, "/no-such-page", axe_source, status=404)
    expect(page.locator("h1")).to_have_text("Not Found")


@pytest.mark.parametrize(("who", "path"), [(None, "/login"), ("ann", "/")])
def test_embedding_pages_have_no_serious_violations(
    page: Page, embedding_desk: LiveServer, axe_source: Path, who: str | None, path: str
) -> None:
    check_page(page, embedding_desk.url, who, path, axe_source)
    expect(page.locator("link[href$='embed/embed.css']")).to_have_count(1)


def test_favicon_is_an_svg_the_policy_allows(desk: tuple[LiveServer, dict[str, int]]) -> None:
    server, _ = desk
    login = requests.get(server.url + "/login", timeout=10)
    href = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', login.text)
    assert href, "base.html links no SVG favicon"
    icon = requests.get(server.url + href.group(1), timeout=10)
    assert icon.status_code == 200
    assert icon.headers["Content-Type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg") and "<script" not in icon.text
    assert "img-src 'self'" in login.headers["Content-Security-Policy"]  # same-origin icon
