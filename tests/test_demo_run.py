"""``make run`` on a fresh machine, end to end: what a newcomer sees in the first minute.

Runs ``scripts/run`` — the entry ``make run`` uses once the virtualenv and assets exist — on
a free port with a fresh database and no provider settings, waits until it serves, and then,
as the demo agent in headless Chromium: sees simulated calls arrive, gets a simulated
mediaservice call of its own, dials a number and sees it end answered, presses Record and sees
the call being recorded, presses Hang up and sees the call end with its recording ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.servers import BIN, NO_ENV_FILE, ROOT, free_port, tail, wait_healthy

pytestmark = pytest.mark.browser


class DemoRun:
    """``scripts/run`` in its own process group, its output in a temporary file."""

    def __init__(self, database: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
        env.update(NO_ENV_FILE)
        env.update(PORT=str(self.port), BIN=str(BIN), DESK_DATABASE_URL=f"sqlite:///{database}",
                   DESK_SIMULATE_RATE="20")  # a call every 3 s: the test need not wait long
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            # scripts/run migrates and creates the demo users first: longer than gunicorn alone.
            wait_healthy(self.proc, self.url, self.log, name="scripts/run", timeout=60)
        except RuntimeError:
            self.stop()
            raise

    def output(self) -> str:
        return tail(self.log)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def _signal(self, number: signal.Signals) -> None:
        # The whole group (the script and the gunicorn it started); it may be gone already
        # when scripts/run exited before it came up.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, number)


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

    # Dial out; like Teleforge, the simulated PBX says nothing until the call's CDR at its
    # end: the row shows Dialling now and Answered once it ended (checked below).
    page.get_by_label("Number to dial").fill("082 000 1234")
    page.get_by_label("Number to dial").press("Enter")
    # The agent is on the mediaservice call still: the desk asks first.
    expect(page.locator("#dial-confirm-msg")).to_contain_text("You are on a call already")
    page.get_by_role("button", name="Dial anyway").click()
    dialled = page.locator("#calls-mine .call", has_text="0820001234")
    expect(dialled).to_have_count(1)
    expect(dialled).to_contain_text("Dialling")
    expect(dialled).to_contain_text("teleforge")

    # Record: the simulated mediaservice starts recording and the row says so.
    row.get_by_role("button", name="Record").click()
    expect(row.locator(".rec--on")).to_have_text("● Recording")
    expect(row.get_by_role("button", name="Stop recording")).to_be_visible()

    # Hang up: the provider's callbacks end the call and deliver the recording.
    row.get_by_role("button", name="Hang up").click()
    expect(row).to_have_attribute("data-state", "ended", timeout=15_000)
    expect(row.locator(".rec--ready")).to_be_visible(timeout=15_000)

    # The dialled call ended meanwhile: its CDR says it was answered.
    expect(page.locator("#calls-ended .call", has_text="0820001234")).to_contain_text(
        "Answered", timeout=30_000)
