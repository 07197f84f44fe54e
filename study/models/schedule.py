"""Occasions (when a participant is asked to answer) and the message outbox.

An `Occasion` is one measurement event in a participant's materialised schedule. Every message
that leaves the system, invitations and reminders included, is an `OutboundMessage` row that a
dispatcher claims under a lease, so that a crash neither loses nor duplicates a send.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow

OCCASION_STATUSES = (
    "scheduled",
    "sent",
    "opened",
    "partial",
    "completed",
    "missed",
    "cancelled",
)
MESSAGE_STATUSES = (
    "pending",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "cancelled",
    "expired",
)


class Occasion(SQLModel, table=True):
    __table_args__ = (Index("ix_occasion_participant_due", "participant_id", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id")
    protocol_version_id: int = Field(foreign_key="protocol_version.id")
    schedule_key: str = Field(max_length=64)
    wave: int = 0
    kind: str = Field(max_length=16)
    instruments: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    due_at: datetime = Field(sa_type=UTCDateTime)
    closes_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="scheduled", max_length=16, index=True)
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboundMessage(SQLModel, table=True):
    __tablename__ = "outbound_message"
    __table_args__ = (Index("ix_outbound_due", "status", "send_after"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    occasion_id: int | None = Field(default=None, foreign_key="occasion.id", index=True)
    channel: str = Field(max_length=16)
    purpose: str = Field(max_length=32)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    send_after: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    lease_owner: str = Field(default="", max_length=100)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    provider_message_id: str = Field(default="", max_length=64, index=True)
    last_error: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A fresh random key per send attempt, written (and committed) before the provider is asked
    # to send. It travels with the message (in the survey link and the status callback URL), so
    # after a crash the provider can be asked whether this very attempt went out.
    attempt_key: str = Field(
        default="", max_length=32, index=True, sa_column_kwargs={"server_default": ""}
    )
    attempt_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SendBudget(SQLModel, table=True):
    """A token bucket per channel, shared by every dispatcher on every host.

    Providers limit how fast one sender may send (a Twilio long code about one segment per
    second). The bucket lives in the database so that the limit holds for the whole deployment,
    not per process.
    """

    __tablename__ = "send_budget"

    channel: str = Field(primary_key=True, max_length=16)
    tokens: float
    refilled_at: datetime = Field(sa_type=UTCDateTime)


class InboundMessage(SQLModel, table=True):
    """A message a participant sent us; `provider_message_id` de-duplicates provider retries."""

    __tablename__ = "inbound_message"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    provider_message_id: str = Field(max_length=64, unique=True)
    sender_hash: str = Field(max_length=64, index=True)
    participant_id: int | None = Field(default=None, foreign_key="participant.id", index=True)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    handled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
