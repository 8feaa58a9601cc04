"""The ceiling: an empty Flask endpoint under the same gunicorn command as the desk.

``POST /webhooks/placetel`` answers 200 without reading the body, touching a database or
publishing anything, so its throughput is what Flask + gunicorn + gevent (and the load
generator) manage on this machine before any work of ours. Ingestion is reported as a
fraction of it.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.post("/webhooks/placetel")
def placetel() -> tuple[str, int]:
    return "", 200
