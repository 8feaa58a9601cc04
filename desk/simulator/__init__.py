"""Built-in provider simulators and demo traffic, kept apart from production code.

(Filled in by the simulator work; ``register_simulators`` is the factory's hook.)
"""

from __future__ import annotations

from flask import Flask


def register_simulators(app: Flask) -> None:
    """Start the simulators when ``DESK_SIMULATE`` is on (never with a provider configured)."""
