"""A call's recording as its ordered segments: pause and resume, files confirmed one by one.

A provider that can only start and stop a recording (the iotcomms mediaservice:
``startrecording`` / ``stoprecording``) pauses by stopping and resumes by starting again
under the next file name, so a call's recording is a list of files. Each one is a
``RecordingSegment`` row: opened when a start or resume is accepted, closed when a pause or
stop is, confirmed (``ready`` or ``failed``) by the provider's callback for its file
(``/recordingReady``). The gaps between segments that a pause left are the *paused spans*
the call page shows.

Why rows and not a list in ``Call.provider_facts``: the press that opens or closes a segment
(``desk.services.actions``, outside the webhook's locked transaction) and the callback that
confirms its file can arrive at the same moment, and a JSON list would be read, changed and
written back whole by both, losing one. Each segment is its own row, changed by conditional
UPDATEs, so they cannot undo each other; one segment failing leaves the others as they are.

``settle`` keeps the call's one-word summary (``Call.recording_state``) true: ``paused``
while a pause stands, and once nothing is recording or waiting for its file any more,
``ready`` when at least one segment is (failed ones are named in ``Call.recording_error``),
``failed`` when all failed.

Those errors are stored in English, as the API gives them; ``error_text`` says them in the
reader's language on a page (a provider's own reason stays as it came).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import LazyString, gettext, lazy_gettext
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, scoped_session

from desk.models import Call, RecordingSegment, User, utcnow

AnySession = Session | scoped_session[Session]
OUTSTANDING = ("recording", "saving")  # no file confirmed yet
FAILED = "the recording failed"
NO_REASON = "no reason given"
KNOWN_ERRORS: dict[str, LazyString] = {
    FAILED: lazy_gettext("the recording failed"),
    NO_REASON: lazy_gettext("no reason given"),
}
"""The desk's own fixed error texts (stored in English), as a page says them."""
_PART_FAILED = re.compile(r"part (\d+) failed: (.*)", re.DOTALL)


@dataclass(frozen=True)
class PausedSpan:
    """A stretch of the call not recorded because someone paused: from ``since`` to
    ``until`` (None: still paused, or the call ended paused at ``call.ended_at``)."""

    after: int  # the position of the segment the pause ended
    since: datetime | None
    until: datetime | None
    paused_by: User | None
    resumed_by: User | None

    @property
    def seconds(self) -> int | None:
        if self.since is None or self.until is None:
            return None
        return max(0, int((self.until - self.since).total_seconds()))


def segments(session: AnySession, call_id: int) -> list[RecordingSegment]:
    """The call's segments in order."""
    return list(session.scalars(select(RecordingSegment).where(
        RecordingSegment.call_id == call_id).order_by(RecordingSegment.position)).unique())


def next_position(session: AnySession, call_id: int) -> int:
    """The position the call's next segment takes (1 for the first)."""
    last = session.scalar(select(func.max(RecordingSegment.position))
                          .where(RecordingSegment.call_id == call_id))
    return int(last or 0) + 1


def opened(session: Session, call_id: int, position: int, file_name: str,
           user_id: int | None) -> None:
    """A start or resume was accepted: segment ``position`` is recording into ``file_name``.
    Added to the caller's transaction."""
    session.add(RecordingSegment(call_id=call_id, position=position, file_name=file_name,
                                 state="recording", started_at=utcnow(),
                                 started_by_id=user_id))


def closed(session: Session, call_id: int, user_id: int | None, reason: str) -> None:
    """A pause or stop (``reason``) was accepted: the segment recording now is saved next.
    Its file may already be confirmed (the callback raced the answer): then only who
    stopped it, when and why are filled in."""
    newest = session.scalar(select(RecordingSegment.id).where(
        RecordingSegment.call_id == call_id).order_by(RecordingSegment.position.desc()).limit(1))
    if newest is None:
        return
    session.execute(update(RecordingSegment).where(
        RecordingSegment.id == newest, RecordingSegment.stopped_at.is_(None)).values(
        stopped_at=utcnow(), stopped_by_id=user_id, stop_reason=reason))
    session.execute(update(RecordingSegment).where(
        RecordingSegment.id == newest, RecordingSegment.state == "recording").values(
        state="saving"))


def file_confirmed(session: Session, call: Call, file_name: str | None, ok: bool, *,
                   size: int | None = None, reason: str | None = None) -> None:
    """The provider says a file is stored (``ok``) or failed: the segment it belongs to
    (by file name; a failure naming none is the oldest segment still waiting) says so.
    A file no segment knows (the provider recorded on its own, as a routing answer asked)
    becomes the next segment."""
    segment = None
    if file_name:
        segment = session.scalars(select(RecordingSegment).where(
            RecordingSegment.call_id == call.id, RecordingSegment.file_name == file_name)
            .order_by(RecordingSegment.position.desc()).limit(1)).first()
    if segment is None and not ok:
        waiting = [s for s in segments(session, call.id) if s.state in OUTSTANDING]
        saving = [s for s in waiting if s.state == "saving"]
        segment = next(iter(saving or waiting), None)
    if segment is None:
        if not file_name:
            return
        segment = RecordingSegment(call_id=call.id, position=next_position(session, call.id),
                                   file_name=file_name)
        session.add(segment)
    segment.state = "ready" if ok else "failed"
    segment.file_size = size if ok else segment.file_size
    segment.error = None if ok else (reason or FAILED)
    if segment.stopped_at is None:
        segment.stopped_at = utcnow()
    session.flush()


def settle(session: Session, call: Call) -> None:
    """``Call.recording_state`` (and ``recording_error``) from the segments, once nothing
    stands in the way: a live call that is starting, paused, or recording into a segment
    still open (or being paused or stopped right now) keeps its state, the presses own it;
    an ended one, one whose recording was stopped, or one whose open segment the provider
    ended by itself (a failure mid-call) takes the segments' verdict when no file is
    outstanding, else shows *stopping*."""
    if call.is_live and call.recording_state in ("pending", "paused"):
        return
    if call.is_live and call.recording_state == "on" and call.pending_action in (
            "pause-record", "stop-record", "record", "resume-record"):
        return
    found = segments(session, call.id)
    if call.is_live and call.recording_state == "on" and (
            not found or found[-1].state == "recording"):
        return
    if not found:
        if call.state == "ended" and call.recording_state in ("on", "pending"):
            call.recording_state = "stopping"  # the file comes with the provider's callback
        return
    if any(s.state in OUTSTANDING for s in found):
        if call.recording_state in ("on", "pending", "paused", "ready", "failed"):
            call.recording_state = "stopping"
        return
    failed = [s for s in found if s.state == "failed"]
    if len(failed) == len(found):
        call.recording_state = "failed"
        call.recording_error = failed[-1].error or FAILED
        return
    call.recording_state = "ready"
    call.recording_error = "; ".join(
        f"part {s.position} failed: {s.error or NO_REASON}" for s in failed) or None


def error_text(stored: str | None) -> str:
    """A stored recording error (``Call.recording_error``, ``RecordingSegment.error``) in the
    reader's language: the desk's own words translated, a provider's reason as it came."""
    if not stored:
        return ""
    said = []
    for piece in stored.split("; "):
        part = _PART_FAILED.fullmatch(piece)
        if part is not None:
            said.append(gettext("part %(part)s failed: %(reason)s", part=part[1],
                                reason=_known(part[2])))
        else:
            said.append(_known(piece))
    return "; ".join(said)


def _known(text: str) -> str:
    known = KNOWN_ERRORS.get(text)
    return str(known) if known is not None else text


def paused_spans(call: Call, found: list[RecordingSegment]) -> list[PausedSpan]:
    """Where the recording was paused: after every segment a pause closed."""
    spans = []
    for index, segment in enumerate(found):
        if segment.stop_reason != "pause":
            continue
        after = found[index + 1] if index + 1 < len(found) else None
        until = after.started_at if after is not None else call.ended_at
        spans.append(PausedSpan(segment.position, segment.stopped_at, until,
                                segment.stopped_by, after.started_by if after else None))
    return spans


def to_json(segment: RecordingSegment) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "position": segment.position,
        "file_name": segment.file_name,
        "state": segment.state,
        "started_at": iso(segment.started_at),
        "started_by": segment.started_by.name if segment.started_by else None,
        "stopped_at": iso(segment.stopped_at),
        "stopped_by": segment.stopped_by.name if segment.stopped_by else None,
        "stop_reason": segment.stop_reason,
        "file_size": segment.file_size,
        "error": segment.error,
    }


def span_json(span: PausedSpan) -> dict[str, Any]:
    return {
        "after_part": span.after,
        "since": span.since.isoformat() if span.since else None,
        "until": span.until.isoformat() if span.until else None,
        "seconds": span.seconds,
        "paused_by": span.paused_by.name if span.paused_by else None,
        "resumed_by": span.resumed_by.name if span.resumed_by else None,
    }
