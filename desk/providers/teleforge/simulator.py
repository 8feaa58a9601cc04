"""A simulated Teleforge Click2Dial PBX: ``POST /simulator/teleforge/click2dial/calls``.

It checks a dial the way Teleforge's document describes (``specs/teleforge-click2dial.txt``:
agent a 3-4 digit extension or a callee-form number; callee ``0`` + 9 digits, ``27`` + 9
digits or ``00`` + 11-14 digits; outbound_id ``random``, ``tvc_<campaign>``, ``27`` + 9 or
``0`` + 9 digits; reference letters, digits and ``.-_~``, cut at 230 characters), answers
422 with ``{"errors": {field: message}}`` when it would refuse, and otherwise queues the call
and plays it: the agent's phone rings, then the callee's, the callee answers, and after a
conversation the call ends. Each step is a notification pushed onto the list the desk's
consumer takes from (``DemoSimulators.push_teleforge``: Redis when configured, else the
in-process list), keyed by the reference in the spelling the dial used.

The checks are written from the document here, not borrowed from the desk's adapter, so
the demo shows the desk's own validation meeting the PBX's.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

log = logging.getLogger(__name__)

bp = Blueprint("simulator_teleforge", __name__, url_prefix="/simulator/teleforge")

_EXTENSION = re.compile(r"[0-9]{3,4}")
_CALLEE = re.compile(r"0[0-9]{9}|27[0-9]{9}|00[0-9]{11,14}")
_OUTBOUND = re.compile(r"random|tvc_[A-Za-z0-9._~-]+|27[0-9]{9}|0[0-9]{9}")
_REFERENCE = re.compile(r"[A-Za-z0-9._~-]*")
REFERENCE_MAX = 230
REFERENCE_KEYS = ("callcontact_ref", "contactcall_ref")  # v3.0+, and before


def check(body: dict[str, Any]) -> dict[str, str]:
    """Teleforge's refusals for a dial body, by field (empty when it would place it)."""
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        value = body.get(name)
        return value.strip() if isinstance(value, str) else str(value or "").strip()

    agent, callee, outbound = text("agent"), text("callee"), text("outbound_id")
    if not (_EXTENSION.fullmatch(agent) or _CALLEE.fullmatch(agent)):
        errors["agent"] = "agent must be a 3-4 digit extension or a number like the callee"
    if not _CALLEE.fullmatch(callee):
        errors["callee"] = ("callee must be 0 + 9 digits, 27 + 9 digits or 00 + 11 to 14 "
                            "digits")
    if not _OUTBOUND.fullmatch(outbound):
        errors["outbound_id"] = ("outbound_id must be 'random', 'tvc_<campaign>', 27 + 9 "
                                 "digits or 0 + 9 digits")
    for key in REFERENCE_KEYS:
        if key in body and not _REFERENCE.fullmatch(text(key)):
            errors[key] = f"{key} may contain letters, digits and . - _ ~ only"
    return errors


def _now_ms() -> int:
    return int(time.time() * 1000)


@bp.post("/click2dial/calls")
def click2dial() -> tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="Send a JSON object: {agent, callee, outbound_id, "
                             "callcontact_ref}."), 400
    errors = check(body)
    if errors:
        return jsonify(errors=errors), 422
    key = next((k for k in REFERENCE_KEYS if k in body), REFERENCE_KEYS[0])
    ref = str(body.get(key) or "").strip()[:REFERENCE_MAX] or f"tf-{uuid.uuid4().hex[:16]}"
    sim = current_app.extensions["simulator"]
    call = {key: ref, "agent": str(body["agent"]).strip(), "callee": str(body["callee"]).strip()}
    threading.Thread(target=play_dial, args=(sim, call), name="sim-teleforge-call",
                     daemon=True).start()
    return jsonify(status="queued", **{key: ref}), 200


def play_dial(sim: Any, call: dict[str, str], rng: random.Random | None = None) -> None:
    """Ring the agent, ring the callee, connect, talk, hang up — one notification each."""
    rng = rng or random.Random()
    talk = rng.uniform(40, 150)
    steps = (
        (0.4, {"status": "ringing", "leg": "agent"}),
        (1.2, {"status": "ringing", "leg": "callee"}),
        (rng.uniform(1.5, 3.5), {"status": "answered"}),
        (talk, {"status": "ended", "duration": int(talk), "cause": "normal_clearing"}),
    )
    for delay, change in steps:
        if sim.stop.wait(delay):
            return
        notification = {**call, **change, "event_id": uuid.uuid4().hex, "timestamp": _now_ms()}
        try:
            sim.push_teleforge(json.dumps(notification).encode())
        except Exception:  # Redis went away: the real PBX would lose it too; say so
            log.exception("simulated Teleforge: could not push a notification")
            return
