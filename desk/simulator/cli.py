"""``flask --app app simulate``: simulated provider traffic into any running desk.

For trying a deployment and for load: the calls of ``desk.simulator.traffic`` go to the
desk at ``--url`` through its real webhooks, with the credentials the real providers would
present, taken from this environment's ``DESK_`` settings (the same ones the desk runs
with): ``DESK_PLACETEL_USER``/``DESK_PLACETEL_PASSWORD`` as Basic auth, ``DESK_STRINGEE_TOKEN``
as ``?token=``, and mediaservice callbacks signed with ``--mediaservice-key`` (the private
half of the key whose public half is the desk's ``DESK_MEDIASERVICE_CALLBACK_KEY_FILE``).
A desk in demo mode takes them without credentials.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from desk.simulator.traffic import PROVIDERS, Auth, Traffic

DEFAULT_RATE = 6.0  # calls a minute when neither --rate nor DESK_SIMULATE_RATE says


@click.command("simulate")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True, max=6000), default=None,
              help=f"New calls per minute (default: DESK_SIMULATE_RATE, or {DEFAULT_RATE:g} "
                   "when that is auto).")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True,
              help="The desk to send to.")
@click.option("--calls", type=click.IntRange(min=1), default=None,
              help="Stop after starting this many calls, once they have ended.")
@click.option("--providers", default=",".join(PROVIDERS), show_default=True,
              help="Which providers' calls to simulate, comma-separated.")
@click.option("--speed", type=click.FloatRange(min=0.01, max=1000), default=1.0,
              show_default=True, help="Divide every ring and talk time by this.")
@click.option("--mediaservice-key", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key to sign mediaservice callbacks with.")
@with_appcontext
def simulate_command(rate: float | None, url: str, calls: int | None, providers: str,
                     speed: float, mediaservice_key: str | None) -> None:
    """Send simulated provider traffic to a running desk until Ctrl+C (or --calls)."""
    chosen = tuple(p.strip() for p in providers.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PROVIDERS]
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(PROVIDERS)}", param_hint="--providers")
    config = current_app.config
    placetel = (config["DESK_PLACETEL_USER"], config["DESK_PLACETEL_PASSWORD"])
    auth = Auth(
        placetel=placetel if placetel[0] else None,
        stringee_token=config["DESK_STRINGEE_TOKEN"] or None,
        mediaservice_key_pem=Path(mediaservice_key).read_text() if mediaservice_key else None,
    )
    # "auto" paces the demo desk's own traffic by its agents, which only it can see.
    traffic = Traffic(url, rate or config["DESK_SIMULATE_RATE"] or DEFAULT_RATE, auth=auth,
                      providers=chosen, speed=speed)
    click.echo(f"Simulating {traffic.current_rate():g} calls a minute ({', '.join(chosen)}) "
               f"into {url}"
               + (f", {calls} calls" if calls else "; Ctrl+C stops") + ".")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: traffic.stop.set())
    began = time.monotonic()
    try:
        traffic.run(calls=calls)
    except KeyboardInterrupt:
        traffic.stop.set()
    answers = ", ".join(f"{status}: {n}" for status, n in sorted(traffic.stats.items()))
    click.echo(f"Done after {time.monotonic() - began:.0f} s. The desk answered: "
               f"{answers or 'nothing'}.")
    for error in traffic.errors:
        click.echo(f"  refused: {error}", err=True)
    if any(status.startswith("4") or status == "unreachable" for status in traffic.stats):
        raise click.ClickException(
            "Some deliveries were refused or did not arrive; check --url and that this "
            "environment has the desk's provider credentials (DESK_PLACETEL_USER, "
            "DESK_PLACETEL_PASSWORD, DESK_STRINGEE_TOKEN, --mediaservice-key)."
        )
