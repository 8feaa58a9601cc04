"""Built-in provider simulators and demo traffic, kept apart from production code.

With ``DESK_SIMULATE`` on (the default in demo mode; never when a provider is configured,
see ``desk.settings``) the desk itself serves a simulated Teleforge Click2Dial PBX under
``/simulator/teleforge`` and a simulated iotcomms mediaservice under
``/simulator/mediaservice``, points its own provider clients at them, and feeds itself
simulated inbound calls (``desk.simulator.traffic``) through its real webhooks.

Why blueprints on the desk rather than servers on ports of their own: the simulators then
start and stop with the desk, need no second port to find, configure or collide on, are
served by whatever serves the desk (``flask run``, gunicorn), and every byte still crosses
real HTTP — the desk's clients call them with ``requests`` exactly as they call the real
providers. The price is that the address is only known once the server answers: the first
request a server process handles starts everything (``DemoSimulators.ensure_started``).

``flask --app app simulate`` (``desk.simulator.cli``) is registered always: it only sends
traffic, to any desk.
"""

from __future__ import annotations

from flask import Flask, request


def register_simulators(app: Flask) -> None:
    """Start the simulators when ``DESK_SIMULATE`` is on (never with a provider configured).

    Started with a server process's first request; under ``TESTING`` a test starts them
    (``app.extensions["simulator"].ensure_started(url)``).
    """
    from desk.simulator.cli import simulate_command

    app.cli.add_command(simulate_command)
    app.extensions["simulator"] = None
    if not app.config["DESK_SIMULATE"]:
        return

    from desk.extensions import csrf
    from desk.providers import REGISTRY
    from desk.simulator.demo import DemoSimulators, own_address

    simulators = DemoSimulators(app)
    app.extensions["simulator"] = simulators
    for provider in REGISTRY.values():
        blueprint = provider.simulator_blueprint()
        if blueprint is None:
            continue
        csrf.exempt(blueprint)  # provider APIs: no cookies, no CSRF
        app.register_blueprint(blueprint)
    if app.testing:
        return

    @app.before_request
    def _start_simulators() -> None:
        if not simulators.started:
            simulators.ensure_started(own_address(request.environ, request.script_root))
