"""The desk's tables as typed SQLAlchemy 2 models.

Models hold data and small derived properties only; they never commit. ``desk.services.ingest`` owns
the call state machine and its transaction, the views own theirs. Timestamps are stored as
naive UTC and handed back timezone-aware (``UTCDateTime``), so SQLite and PostgreSQL agree.
Schema changes go through Alembic revisions in ``migrations/versions``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from desk.domain.outcomes import outcome_of


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC; refuses naive input so no local time slips in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


ROLES = ("agent", "supervisor")
PRESENCES = ("available", "away", "wrap-up", "offline")
STATES = ("dialling", "ringing", "talking", "ended")
LIVE_STATES = ("dialling", "ringing", "talking")


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    extension: Mapped[str | None] = mapped_column(String(16))
    sip_peer: Mapped[str | None] = mapped_column(String(255), unique=True)
    stringee_user_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    presence: Mapped[str] = mapped_column(String(16), default="offline")
    presence_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set with an automatic wrap-up after a call (``desk.services.wrapup``): the agent is
    # available again from then on; None for a presence the agent chose.
    presence_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped by logout and a password change: a session cookie carries the version it was
    # issued with, so every older session of this user stops working at once.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Where the agent's calls ring (desk.web.softphone): "desk" (their SIP phone) or
    # "browser" (the desk's softphone), and the SIP password they let the desk keep,
    # encrypted with DESK_SIP_SECRET_KEY (never shown, never logged).
    phone: Mapped[str] = mapped_column(String(16), default="desk", server_default="desk")
    sip_password_encrypted: Mapped[str | None] = mapped_column(Text)
    # The user's own language (a code of desk.i18n.LANGUAGES) and IANA time zone, chosen in
    # the header and on /settings; None: the browser's language, DESK_TIMEZONE (desk.i18n).
    language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "extension": self.extension,
            "sip_peer": self.sip_peer,
            "stringee_user_id": self.stringee_user_id,
            "presence": self.presence,
            "presence_since": self.presence_since.isoformat(),
            "presence_until": self.presence_until.isoformat() if self.presence_until else None,
        }


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user: User) -> tuple[ApiToken, str]:
        """A new token row and the plain token, which is shown once and never stored."""
        plain = "desk_" + secrets.token_urlsafe(32)
        return cls(user=user, token_hash=cls.hash(plain)), plain


class Call(Base):
    """One call as the desk knows it: the merge of every event a provider sent about it."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("provider", "provider_call_id", name="uq_calls_provider_call"),
        Index("ix_calls_state", "state"),
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_ended_at", "ended_at"),
        Index("ix_calls_answered_at", "answered_at"),  # wallboard: answered today, AHT
        Index("ix_calls_agent_started", "agent_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_call_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answered_by: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="ringing")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ringing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[int | None] = mapped_column(Integer)
    end_cause: Mapped[str | None] = mapped_column(String(64))
    recording_state: Mapped[str] = mapped_column(String(16), default="off")
    recording_file_name: Mapped[str | None] = mapped_column(String(1000))
    recording_error: Mapped[str | None] = mapped_column(Text)
    outbound_id: Mapped[str | None] = mapped_column(String(64))
    # What an agent pressed that the provider has not confirmed yet ("hangup", "split",
    # "record", "stop-record"), and the last refusal to show inline on the row.
    pending_action: Mapped[str | None] = mapped_column(String(32))
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    action_error: Mapped[str | None] = mapped_column(Text)
    transfer_to: Mapped[str | None] = mapped_column(String(255))
    # Provider-specific facts the desk needs to act on the call later (mediaservice replyId,
    # connectionId, ...). Updated with dict.update, never replaced.
    provider_facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The agents routing offered the call to while it rang (ids, in ringing order), kept by
    # ``desk.services.routing_store.record_offer``; None when the desk was not asked.
    offered_to: Mapped[list[int] | None] = mapped_column(JSON)
    # After-call work: the disposition picked (its label at the time, so renaming the list
    # never rewrites history), the agent's note, and who saved them when.
    disposition: Mapped[str | None] = mapped_column(String(80))
    wrap_up_note: Mapped[str | None] = mapped_column(Text)
    wrapped_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wrapped_up_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    caller_participant_id: Mapped[str | None] = mapped_column(String(255), index=True)
    callee_participant_id: Mapped[str | None] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    agent: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[agent_id])

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def timer_since(self) -> datetime:
        """What the row's ticking timer counts from: answer time when talking, else start."""
        if self.state == "talking" and self.answered_at:
            return self.answered_at
        return self.ringing_at or self.started_at

    @property
    def outcome(self) -> str:
        """How the call went, in the words a supervisor uses (``desk.domain.outcomes``)."""
        return outcome_of(self.state, self.end_cause, self.answered_at, self.duration)

    @property
    def talk_seconds(self) -> int | None:
        """Talk time, the one figure the board, call page, history, CSV, API and CRM show:
        the provider's ``duration`` when it sent one, else ended minus answered (as the
        wallboard's handle time); None for a call not both answered and ended."""
        if self.duration is not None:
            return self.duration
        if self.answered_at and self.ended_at:
            return max(0, int((self.ended_at - self.answered_at).total_seconds()))
        return None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "provider": self.provider,
            "provider_call_id": self.provider_call_id,
            "direction": self.direction,
            "from": self.from_number,
            "to": self.to_number,
            "agent": self.agent.name if self.agent else None,
            "answered_by": self.answered_by,
            "state": self.state,
            "outcome": self.outcome,
            "started_at": iso(self.started_at),
            "ringing_at": iso(self.ringing_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "duration": self.talk_seconds,
            "end_cause": self.end_cause,
            "recording_state": self.recording_state,
            "recording_error": self.recording_error,
            "outbound_id": self.outbound_id,
            "pending_action": self.pending_action,
            "action_error": self.action_error,
            "disposition": self.disposition,
            "wrap_up_note": self.wrap_up_note,
            "wrapped_up_at": iso(self.wrapped_up_at),
        }


class Delivery(Base):
    """The append-only event log: every authenticated webhook delivery exactly as received.

    ``applied_key`` is the provider's dedupe key, set only on the delivery that was applied;
    its unique index is what makes a retried delivery change nothing, even when two server
    processes receive the retry at the same moment. Duplicates and rejected deliveries are
    kept too (``status``), so a support person can see exactly what arrived.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_call", "provider", "provider_call_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str | None] = mapped_column(String(64))
    provider_call_id: Mapped[str | None] = mapped_column(String(255))
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # applied | duplicate | rejected
    error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(320))
    applied_key: Mapped[str | None] = mapped_column(String(360), unique=True)
    content_type: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)


class Disposition(Base):
    """A wrap-up outcome agents pick for an ended call ("Sale", "Call back"), in the order
    supervisors keep them. A removed one is kept inactive: calls keep the label they got."""

    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(80), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LiveChange(Base):
    """The durable live change sequence: what one committed transaction changed, numbered.

    Written in the transaction it describes (``desk.live.sequence``), so a change that
    committed is in here even if the process that made it dies before publishing it. Every
    server process delivers these in ``seq`` order to its boards: fast through Redis, and by
    reading this table whenever it notices a gap or a silence. Rows are kept for
    ``DESK_LIVE_CHANGES_KEEP`` seconds.
    """

    __tablename__ = "live_changes"
    # SQLite would otherwise reuse numbers once the newest rows are pruned or rolled back.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    changes: Mapped[dict[str, list[int]]] = mapped_column(JSON)
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AuditEntry(Base):
    """Who pressed what, when, on which call, and what the provider answered."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused | error
    provider_answer: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User | None] = relationship()


class Alert(Base):
    """Something a supervisor must see: a provider alarm, a notification the desk could not
    read. Kept until acknowledged; the raw delivery stays in the event log."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class RoutingConfig(Base):
    """The inbound routing rules supervisors edit: one row, the rules as a JSON document
    (validated by ``desk.domain.routing.Rules`` before it is stored)."""

    __tablename__ = "routing_config"

    id: Mapped[int] = mapped_column(primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class EmbedGrant(Base):
    """A short-lived credential for the desk inside a CRM iframe (``desk.web.embed``).

    ``kind`` is ``code`` (the popup login's one-time code, 60 s), ``ticket`` (one page load
    or websocket connect, 60 s) or ``token`` (the iframe's header credential when it keeps
    no cookies, one shift). Only the SHA-256 of the secret is stored; codes and tickets are
    spent by setting ``used_at``.
    """

    __tablename__ = "embed_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class UsedToken(Base):
    """A signed callback token already accepted (its ``jti``), kept until it expires, so a
    captured token cannot be replayed (the replay cache when Redis is not configured)."""

    __tablename__ = "used_tokens"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ListenIn(Base):
    """A supervisor listening in: the mediaservice calls one agent takes (``agent_id``), or
    the calls to one number (``number``), ring ``address`` as a silent monitoring leg
    (``desk.services.listen``). Exactly one of the two is set; stopping deletes the row."""

    __tablename__ = "listen_ins"
    __table_args__ = (
        UniqueConstraint("supervisor_id", "agent_id", name="uq_listen_ins_supervisor_agent"),
        UniqueConstraint("supervisor_id", "number", name="uq_listen_ins_supervisor_number"),
        CheckConstraint("(agent_id IS NULL) <> (number IS NULL)", name="ck_listen_ins_one_target"),
        # Ids are never reused after a stop (SQLite would): the audit log names rules by id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                 index=True)
    number: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(255))  # sip: URI the silent leg rings
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    supervisor: Mapped[User] = relationship(foreign_keys=[supervisor_id], lazy="joined")
    agent: Mapped[User | None] = relationship(foreign_keys=[agent_id], lazy="joined")


class RecordingSegment(Base):
    """One stretch of a call's recording, from a start (or resume) to a stop (or pause): the
    provider stores each as its own file, and the call's recording is its segments in
    ``position`` order (``desk.services.recording``). ``state``: ``recording``, ``saving``
    (stopped, the file not confirmed yet), ``ready`` or ``failed``."""

    __tablename__ = "recording_segments"
    __table_args__ = (
        UniqueConstraint("call_id", "position", name="uq_recording_segments_call_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(16), default="recording")
    # None when the provider started it itself (a recording asked for in the routing answer).
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stop_reason: Mapped[str | None] = mapped_column(String(16))  # pause | stop | None: call end
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)

    started_by: Mapped[User | None] = relationship(foreign_keys=[started_by_id], lazy="joined")
    stopped_by: Mapped[User | None] = relationship(foreign_keys=[stopped_by_id], lazy="joined")
