"""``make run`` on a fresh machine, end to end: what a newcomer sees in the first minute.

Runs ``scripts/run`` — the entry ``make run`` uses once the virtualenv and assets exist — on
a free port with a fresh database and no provider settings, waits until it serves, and then,
as the demo agent in headless Chromium: sees simulated calls arrive, gets a simulated
mediaservice call of its own, dials a number and sees it connect, presses Record and sees
the call being recorded, presses Hang up and sees the call end with its recording ready.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.servers import BIN, ROOT, free_port

pytestmark = pytest.mark.browser


class DemoRun:
    """``scripts/run`` in its own process group, its output in a temporary file."""

    def __init__(self, database: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
        env.update(PORT=str(self.port), BIN=str(BIN), DESK_DATABASE_URL=f"sqlite:///{database}",
                   DESK_SIMULATE_RATE="20")  # a call every 3 s: the test need not wait long
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scripts/run exited: {self.output()}")
            try:
                if requests.get(self.url + "/healthz", timeout=5).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"scripts/run did not come up: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-6000:]

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path / "desk.sqlite3")
    yield run
    run.stop()


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1280, "height": 900}


def test_make_run_shows_live_calls_a_dial_and_working_buttons(demo: DemoRun, page: Page) -> None:
    printed = demo.output()
    assert f"Agent Desk on http://127.0.0.1:{demo.port}/" in printed
    assert "Log in as 'agent' with password 'demo-password'" in printed
    assert "Log in as 'supervisor'" in printed

    page.goto(demo.url)
    page.get_by_label("Name").fill("agent")
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live-status")).to_have_text("live")

    # Simulated calls arrive, and one of them rings this agent and is answered.
    expect(page.locator(".call").first).to_be_visible(timeout=30_000)
    mine = page.locator("#calls-mine .call", has=page.get_by_role("button", name="Record"))
    expect(mine.first).to_be_visible(timeout=60_000)
    row = page.locator(f"#{mine.first.get_attribute('id')}")
    expect(row).to_contain_text("mediaservice")

    # Dial out; the simulated PBX rings both ends and the call connects.
    page.get_by_label("Number to dial").fill("082 000 1234")
    page.get_by_label("Number to dial").press("Enter")
    dialled = page.locator("#calls-mine .call", has_text="0820001234")
    expect(dialled).to_have_count(1)
    expect(dialled).to_contain_text("Talking", timeout=20_000)
    expect(dialled).to_contain_text("teleforge")

    # Record: the simulated mediaservice starts recording and the row says so.
    row.get_by_role("button", name="Record").click()
    expect(row.locator(".rec--on")).to_have_text("● Recording")
    expect(row.get_by_role("button", name="Stop recording")).to_be_visible()

    # Hang up: the provider's callbacks end the call and deliver the recording.
    row.get_by_role("button", name="Hang up").click()
    expect(row).to_have_attribute("data-state", "ended", timeout=15_000)
    expect(row.locator(".rec--ready")).to_be_visible(timeout=15_000)
