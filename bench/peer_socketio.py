"""The peer: the same webhook → board fan-out done the way most Flask dashboards do it.

Flask-SocketIO with its Redis message queue, under the same gunicorn gevent command as the
desk. ``POST /webhooks/placetel`` checks the same Basic credentials, stores the delivery
with one SQLAlchemy insert + commit, renders a call row once and emits it to every
connected client (``socketio.emit`` → Redis → every worker → its clients). It has no state
machine, no dedupe, no audiences and no snapshot, so it does strictly less work than the
desk per event; the ratio in RESULTS.md is therefore the desk's cost over a lean baseline.

Settings (environment): ``BENCH_PEER_DATABASE_URL``, ``BENCH_PEER_REDIS_URL``,
``BENCH_PEER_CHANNEL``. ``python -m bench.peer_socketio create-schema`` creates the table.
"""

from __future__ import annotations

import hmac
import os
import sys
from datetime import UTC, datetime

from flask import Flask, abort, render_template_string, request
from flask_socketio import SocketIO
from sqlalchemy import DateTime, Integer, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

STATES = {"IncomingCall": "ringing", "CallAccepted": "talking", "HungUp": "ended"}
ROW = """<article class="call call--{{ state }}" id="call-{{ id }}" data-state="{{ state }}"
 hx-swap-oob="true"><span class="call__state">{{ state|capitalize }}</span>
 <span class="call__parties"><span class="call__from" title="Caller">{{ from_number }}</span>
 <span class="call__arrow" aria-label="to">→</span>
 <span class="call__to" title="Called number">{{ to_number }}</span></span>
 <time class="call__timer" datetime="{{ at }}">0:00</time>
 <span class="call__meta">placetel · inbound</span></article>"""


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "bench_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), index=True)
    event: Mapped[str] = mapped_column(String(32))
    from_number: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _engine(url: str):  # type: ignore[no-untyped-def]
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
    return create_engine(url, pool_size=10, max_overflow=20)


DATABASE_URL = os.environ.get("BENCH_PEER_DATABASE_URL", "sqlite:///peer.sqlite3")
engine = _engine(DATABASE_URL)
app = Flask(__name__)
socketio = SocketIO(
    app, message_queue=os.environ.get("BENCH_PEER_REDIS_URL", "redis://127.0.0.1:6379/0"),
    channel=os.environ.get("BENCH_PEER_CHANNEL", "flask-socketio"), async_mode="gevent",
    cors_allowed_origins="*",
)


@app.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.post("/webhooks/placetel")
def placetel() -> tuple[str, int]:
    auth = request.authorization
    if auth is None or not (hmac.compare_digest(auth.username or "", "placetel")
                            and hmac.compare_digest(auth.password or "", "s3cret-pt")):
        abort(401)
    form = request.form
    state = STATES.get(form.get("event", ""))
    if state is None or not form.get("call_id"):
        abort(400)
    with Session(engine) as session:
        row = Event(call_id=form["call_id"], event=form["event"], from_number=form.get("from"),
                    payload=request.get_data(as_text=True), received_at=datetime.now(UTC))
        session.add(row)
        session.commit()
        html = render_template_string(
            ROW, id=row.id, state=state, from_number=row.from_number,
            to_number=form.get("to"), at=row.received_at.isoformat(),
        )
    socketio.emit("row", html)
    return '{"status": "applied"}', 200


if __name__ == "__main__" and sys.argv[1:] == ["create-schema"]:
    Base.metadata.create_all(engine)
