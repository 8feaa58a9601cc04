"""Embedding the desk in a CRM: framing headers, iframe-safe cookies, the postMessage protocol.

(Filled in by the embedding work; ``register_embedding`` is the factory's hook.)
"""

from __future__ import annotations

from flask import Flask


def register_embedding(app: Flask) -> None:
    """Install what embedding needs on ``app``."""
