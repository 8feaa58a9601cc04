"""Recovery from faults, for ``make bench``: how long until every board is right again.

Runs the scenario of ``tests/test_faults.py`` once, with its harness (``FaultDesk``): the
desk under gunicorn with 2 workers on a private PostgreSQL and a private Redis started in
temporary folders, boards on both workers, steady Placetel load (retried until accepted,
as Placetel retries), and one fault after the other: Redis restarted, PostgreSQL
restarted, a worker killed with ``kill -9``, rendering broken by taking away the right to
read the users table. Unlike the test, the load pauses the moment a fault ends, so what is
measured is the recovery itself: the seconds from the fault's end until every delivery
was accepted (the retries of the deliveries the fault refused), from then until every
board equals a fresh snapshot, and the sum, fault end → every board correct. Then whether
any delivery was lost or applied twice.

    python bench/faults.py          # about a minute and a half; prints the rows
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402  (a missing server binary is reported through pytest's skip)

from tests.services import PrivatePostgres, PrivateRedis  # noqa: E402
from tests.test_faults import FAULTS, FaultDesk  # noqa: E402


def run(log: Any = print) -> dict[str, Any]:
    """The scenario once: a dict with the plan, one entry per fault and the accounting."""
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    out: dict[str, Any] = {"faults": []}
    started = time.monotonic()
    try:
        postgres.start()
        redis_server.start()
        desk = FaultDesk(postgres, redis_server, load_after=0.0)
        try:
            assert desk.load is not None
            out.update(boards=len(desk.boards), rate=desk.load.rate,
                       load_before=desk.load_before, load_after=desk.load_after,
                       deadline=desk.deadline)
            for fault in FAULTS:
                result = desk.run_fault(fault)
                log("  " + result.summary())
                out["faults"].append(asdict(result))
            books = desk.account()
            out["accounting"] = asdict(books)
            log(f"  {books.sent} deliveries: {len(books.lost)} lost, {len(books.twice)} "
                f"applied twice, {len(books.wrong)} calls in the wrong state, "
                f"{books.refused} answered 4xx")
        finally:
            desk.close()
    finally:
        redis_server.stop()
        postgres.remove()
    out["seconds"] = time.monotonic() - started
    return out


def run_part(out: dict[str, Any], log: Any = print) -> None:
    """``bench/run.py``'s part: results into ``out["faults"]``; a scenario that cannot run
    (no PostgreSQL binaries here) or breaks becomes a note, not a lost benchmark run."""
    try:
        out["faults"] = run(log)
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
        out["notes"].append(f"faults: not measured ({exc.__class__.__name__}: "
                            f"{str(exc)[:300]})")


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def render(part: dict[str, Any]) -> list[str]:
    """RESULTS.md's section for ``run``'s result."""
    lines = [
        f"## 4. Recovery from faults ({part['boards']} boards on 2 workers, PostgreSQL + "
        f"Redis, steady {part['rate']:g} Placetel deliveries/s)",
        "",
        "Each fault while the load runs; the load pauses "
        + (f"{part['load_after']:g} s after the fault ends" if part["load_after"] else
           "when the fault ends")
        + " and waits until every delivery (retried until accepted) is accepted. "
        "correct = every board's rows equal a fresh "
        "snapshot for its user (`tests/test_faults.py`, `difference`); never = not within "
        f"{part['deadline']:g} s. Renders failed = the server logged a failed render.",
        "",
        "| fault | fault lasted s | deliveries | tries not accepted | renders failed | "
        "fault end → all accepted s | all accepted → every board correct s | "
        "fault end → every board correct s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in part["faults"]:
        lines.append(
            f"| {r['fault']} | {r['lasted']:.2f} | {r['deliveries']} | {r['retried']} | "
            f"{r['render_failures']} | {r['accepted_after']:.2f} | {_s(r['settle'])} | "
            f"{_s(r['correct_after'])} |")
    books = part.get("accounting")
    if books:
        lines += ["", f"{books['sent']} deliveries in all: {len(books['lost'])} lost, "
                  f"{len(books['twice'])} applied twice, {len(books['wrong'])} calls left in "
                  f"the wrong state, {books['refused']} answered 4xx."]
    never = [r for r in part["faults"] if r["settle"] is None]
    for r in never:
        lines += ["", f"- {r['fault']}: boards still differed: {r['difference'][:400]}"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    part = run()
    print("\n".join(render(part)))


if __name__ == "__main__":
    main()
