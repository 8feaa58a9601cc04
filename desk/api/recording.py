"""``/api/v1/calls/<id>/recording/pause|resume`` and the recording's segments.

Pausing stops the provider's recording, resuming starts it again into the next file
(``desk.services.recording``): ``POST …/recording/pause`` and ``…/resume`` answer like the
other call buttons (202 with the call, whose ``recording_state`` reads ``paused`` / ``on``;
502/504 when the provider refused or did not answer; 4xx when the desk refuses). Both are
audited with who pressed them. ``GET …/recording/segments`` lists the segments in order,
with the paused spans between them and, for each ready one, the path that plays it (a
redirect to a fresh provider address).
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from desk.api.actions import _action, _run, _who
from desk.api.blueprint import bp
from desk.api.openapi import ERROR
from desk.extensions import db
from desk.services import actions, recording
from desk.services.visibility import load_visible


@bp.post("/calls/<int:call_id>/recording/pause")
def api_pause_record(call_id: int) -> ResponseReturnValue:
    return _run(lambda: actions.pause_recording(*_who(call_id), current_app.config))


@bp.post("/calls/<int:call_id>/recording/resume")
def api_resume_record(call_id: int) -> ResponseReturnValue:
    return _run(lambda: actions.resume_recording(*_who(call_id), current_app.config))


@bp.get("/calls/<int:call_id>/recording/segments")
def api_recording_segments(call_id: int) -> Response:
    call = load_visible(db.session, current_user, call_id)
    found = recording.segments(db.session, call.id)
    parts = []
    for segment in found:
        data = recording.to_json(segment)
        data["play"] = (url_for("board.play", call_id=call.id, part=segment.position)
                        if segment.state == "ready" else None)
        parts.append(data)
    return jsonify(recording_state=call.recording_state, recording_error=call.recording_error,
                   segments=parts,
                   paused=[recording.span_json(span)
                           for span in recording.paused_spans(call, found)])


SEGMENT = {
    "type": "object",
    "properties": {
        "position": {"type": "integer", "description": "1, 2, ...: the order they play in."},
        "file_name": {"type": "string"},
        "state": {"type": "string", "enum": ["recording", "saving", "ready", "failed"]},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "started_by": {"type": ["string", "null"]},
        "stopped_at": {"type": ["string", "null"], "format": "date-time"},
        "stopped_by": {"type": ["string", "null"]},
        "stop_reason": {"type": ["string", "null"], "enum": ["pause", "stop", None]},
        "file_size": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"], "description": "Why this part failed."},
        "play": {"type": ["string", "null"],
                 "description": "Path that redirects to this part's audio (ready ones)."},
    },
}

PAUSED = {
    "type": "object",
    "properties": {
        "after_part": {"type": "integer"},
        "since": {"type": ["string", "null"], "format": "date-time"},
        "until": {"type": ["string", "null"], "format": "date-time",
                  "description": "null: still paused"},
        "seconds": {"type": ["integer", "null"]},
        "paused_by": {"type": ["string", "null"]},
        "resumed_by": {"type": ["string", "null"]},
    },
}

PATHS: dict[str, Any] = {
    "/calls/{call_id}/recording/pause": {"post": _action(
        "Pause recording",
        "Stops the recording for now (mediaservice: stoprecording; the part recorded so far "
        "is stored as its own file). The row shows Recording paused to everyone.")},
    "/calls/{call_id}/recording/resume": {"post": _action(
        "Resume recording",
        "Records again after a pause, into the next part's file (mediaservice: "
        "startrecording).")},
    "/calls/{call_id}/recording/segments": {"get": {
        "summary": "The recording's parts and pauses",
        "description": "A recording paused and resumed is several files, played in order.",
        "parameters": [{"name": "call_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {
            "200": {"description": "Parts in order, and the paused spans between them",
                    "content": {"application/json": {"schema": {
                        "type": "object", "properties": {
                            "recording_state": {"type": "string"},
                            "recording_error": {"type": ["string", "null"]},
                            "segments": {"type": "array", "items": SEGMENT},
                            "paused": {"type": "array", "items": PAUSED}}}}}},
            "401": ERROR, "403": ERROR, "404": ERROR,
        },
    }},
}
