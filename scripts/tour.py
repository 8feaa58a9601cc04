"""Take README's tour screenshots (docs/tour/*.png) from a demo desk in headless Chromium.

``make tour`` runs this. By default it starts its own demo desk with ``scripts/run`` on a
free port and a throw-away database (so your own demo data is left alone), with simulated
calls coming fast; ``--url`` points it at a demo desk you already run instead. It logs in as
the demo agent and takes: a call ringing for the agent (it rings one itself through the
demo's unauthenticated Placetel webhook, and hangs it up afterwards), the agent board with
live calls, the dial form showing a validation message, a call being recorded, and, hung
up, its wrap-up form (with a few example dispositions when the desk has none yet); then,
as the supervisor, the wallboard (``/wallboard``, or the supervisor board where a desk has
none). Needs Playwright (the test extras) and Debian's Chromium (``make browser``);
Playwright downloads no browser.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "tour"
PASSWORD = "demo-password"
VIEWPORT = {"width": 1280, "height": 860}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def demo_desk() -> Iterator[str]:
    """``scripts/run`` on a free port with a fresh database; yields its URL."""
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="desk-tour-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env.update(PORT=str(port), BIN=str(Path(sys.executable).parent),
               DESK_DATABASE_URL=f"sqlite:///{folder / 'desk.sqlite3'}",
               DESK_SIMULATE_RATE="20")
    log = (folder / "run.log").open("w")
    proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the demo desk did not start; see {folder / 'run.log'}")
            try:
                if requests.get(url + "/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def log_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda address: "/login" not in address)


def shoot(page: Page, name: str) -> None:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"  {path.relative_to(ROOT)}")


EXAMPLE_DISPOSITIONS = ["Sale", "Call back", "Information given", "No interest"]


def example_dispositions(page: Page, url: str) -> None:
    """As the supervisor: a dispositions list for the wrap-up form, unless there is one."""
    log_in(page, url, "supervisor")
    if page.request.get(url + "/api/v1/dispositions").json()["dispositions"]:
        return
    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    answer = page.request.put(url + "/api/v1/dispositions", headers={"X-CSRFToken": token},
                              data={"dispositions": EXAMPLE_DISPOSITIONS})
    if not answer.ok:
        raise SystemExit(f"could not set example dispositions: {answer.status} {answer.text()}")


def ringing_for_you(page: Page, url: str) -> None:
    """A call ringing the agent: the demo accepts Placetel's webhook without credentials."""
    call = f"tour-{int(time.time())}"
    page.request.post(url + "/webhooks/placetel", form={
        "event": "IncomingCall", "call_id": call, "from": "+49 221 1234567", "to": "0221"})
    try:
        # The agent may be on a call just then: a simulated call will ring them soon after.
        expect(page.locator("#ringing")).to_be_visible(timeout=90_000)
        expect(page).to_have_title(re.compile(r"^\(\d+\) Ringing for you"))
        shoot(page, "ringing-for-you")
    finally:
        page.request.post(url + "/webhooks/placetel", form={
            "event": "HungUp", "call_id": call, "type": "missed", "duration": "0"})


def wrap_up(page: Page, row_id: str) -> None:
    """Hang up the agent's call: its ended row's wrap-up form, filled in."""
    page.locator(f"#{row_id}").get_by_role("button", name="Hang up").click()
    row = page.locator(f"#calls-ended #{row_id}")
    expect(row.locator(".wrapup__form")).to_be_visible(timeout=60_000)
    disposition = row.get_by_label("Disposition")
    if disposition.count():
        disposition.select_option(index=2)
    row.get_by_label("Note").fill("Wants the brochure by post; call back on Friday")
    row.scroll_into_view_if_needed()
    shoot(page, "wrap-up")


def agent_tour(page: Page, url: str) -> None:
    log_in(page, url, "agent")
    expect(page.locator("#live-status")).to_have_text("live")
    ringing_for_you(page, url)
    own = page.locator("#calls-mine .call", has=page.get_by_role("button", name="Record"))
    expect(own.first).to_be_visible(timeout=90_000)
    expect(page.locator("#calls-queue .call").first).to_be_visible(timeout=60_000)
    expect(page.locator("#calls-ended .call").first).to_be_visible(timeout=60_000)
    shoot(page, "agent-board")

    callee = page.get_by_label("Number to dial")
    callee.press_sequentially("082 000 12")
    callee.press("Tab")  # leaving the field checks it, as typing does after a pause
    expect(page.locator("#dial-callee-msg.field-msg--error")).to_be_visible()
    shoot(page, "dial-validation")
    callee.fill("")
    callee.press("Tab")

    row_id = own.first.get_attribute("id") or ""
    row = page.locator(f"#{row_id}")
    row.get_by_role("button", name="Record").click()
    expect(row.locator(".rec--on")).to_be_visible()
    shoot(page, "recording")
    wrap_up(page, row_id)


def supervisor_tour(page: Page, url: str) -> None:
    log_in(page, url, "supervisor")
    wallboard = page.request.get(url + "/wallboard").status == 200
    page.goto(url + ("/wallboard" if wallboard else "/supervisor"))
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(2000)  # let the live counters and timers tick once
    shoot(page, "wallboard" if wallboard else "supervisor-board")


def take(url: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium is not installed; `make browser` installs it.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            for tour in (example_dispositions, agent_tour, supervisor_tour):
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                tour(context.new_page(), url)
                context.close()
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running demo desk (default: start one)")
    args = parser.parse_args()
    print(f"Taking the tour's screenshots into {OUT.relative_to(ROOT)}/ ...")
    if args.url:
        take(args.url.rstrip("/"))
    else:
        with demo_desk() as url:
            take(url)


if __name__ == "__main__":
    main()
