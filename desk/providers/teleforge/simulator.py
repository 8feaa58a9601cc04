"""A simulated Teleforge Click2Dial PBX: ``POST /simulator/teleforge/click2dial/calls``.

It checks a dial the way Teleforge's "Create a Call" page describes (agent a 3-4 digit
extension or a callee-form number; callee ``0`` + 9 digits, ``27`` + 9 digits or ``00`` +
11-14 digits; outbound_id ``random``, ``tvc_<campaign>``, ``27`` + 9 or ``0`` + 9 digits;
reference letters, digits and ``.-_~``, cut at 230 characters), answers 422 with
``{"errors": {field: message}}`` when it would refuse (the real PBX's error answer is not
documented), and otherwise plays the call: the agent's phone rings and is answered, then the
callee's, they talk, and one of them hangs up. Like the real PBX it says nothing while the
call runs (Teleforge sends a connection notification only for inbound calls): at the end it
pushes one CDR, ``{"type": "cdr", "payload": {...}}`` in the format of the version the dial's
body shows (``contact_ref``: v3.0.0 and later, with ``number``; ``call_ref``: before, with
the client's number in ``ref``), onto the configured list whose name ends in ``:cdr``
(``DemoSimulators.push_teleforge``: Redis when configured, else the in-process list).

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
REFERENCE_KEYS = ("contact_ref", "call_ref")  # v3.0.0 and later, and before
_PBX_NUMBER = "27210000000"  # the number a simulated PBX shows when the dial lets it choose


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


def target_list(lists: list[str], kind: str) -> str:
    """The configured list Teleforge pushes ``kind`` onto: ``...:cdr`` for CDRs,
    ``...:inbound`` for call connections; the first list when none is named so."""
    suffix = {"cdr": "cdr", "call": "inbound"}[kind]
    return next((name for name in lists if name == suffix or name.endswith(":" + suffix)),
                lists[0])


@bp.post("/click2dial/calls")
def click2dial() -> tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="Send a JSON object: {agent, callee, outbound_id, "
                             "contact_ref}."), 400
    errors = check(body)
    if errors:
        return jsonify(errors=errors), 422
    key = next((k for k in REFERENCE_KEYS if k in body), REFERENCE_KEYS[0])
    ref = str(body.get(key) or "").strip()[:REFERENCE_MAX] or f"tf-{uuid.uuid4().hex[:16]}"
    sim = current_app.extensions["simulator"]
    outbound = str(body["outbound_id"]).strip()
    call = {"reference": ref, "agent": str(body["agent"]).strip(),
            "callee": str(body["callee"]).strip(), "version": "3" if key == "contact_ref" else "2",
            "dial_number": outbound if outbound.isdigit() else _PBX_NUMBER,
            "list": target_list(list(current_app.config["DESK_TELEFORGE_LISTS"]), "cdr")}
    threading.Thread(target=play_dial, args=(sim, call), name="sim-teleforge-call",
                     daemon=True).start()
    return jsonify(status="queued", **{key: ref}), 200


def cdr(call: dict[str, str], dialed_at: float, call_time: int, end_reason: str = "hungup",
        end_code: int = 16) -> dict[str, object]:
    """The CDR Teleforge pushes at the end of a Click2Dial call, in the dial's version."""
    payload: dict[str, object] = {
        "extension": call["agent"], "number": call["callee"], "dial_number": call["dial_number"],
        "call_ref": f"tf-{uuid.uuid4().hex[:16]}", "contact_ref": call["reference"],
        "dialed_at": int(dialed_at), "end_reason": end_reason, "end_code": end_code,
        "call_time": call_time, "hold_time": 0, "call_dir": "outbound", "recording_url": "",
        "ref": "click-dial",
    }
    if call["version"] == "2":  # before v3.0.0: no "number"; "ref" is the client's number
        del payload["number"]
        payload["ref"] = call["callee"]
    return {"type": "cdr", "payload": payload}


def play_dial(sim: Any, call: dict[str, str], rng: random.Random | None = None) -> None:
    """Ring the agent, ring the callee, talk, hang up; then push the call's one CDR.

    Short calls (a few seconds each step), so a demo dial ends while one watches.
    """
    rng = rng or random.Random()
    dialed_at = time.time()
    for seconds in (rng.uniform(0.5, 1.5), rng.uniform(1.0, 3.0), rng.uniform(4.0, 12.0)):
        if sim.stop.wait(seconds):
            return
    call_time = max(1, round(time.time() - dialed_at))  # ringing included, as Teleforge counts
    try:
        sim.push_teleforge(json.dumps(cdr(call, dialed_at, call_time)).encode(), call["list"])
    except Exception:  # Redis went away: the real PBX would lose it too; say so
        log.exception("simulated Teleforge: could not push a CDR")
