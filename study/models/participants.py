"""Participants, their contact points, consents and allocations.

Everything analysis can see refers to a participant by `code` (pseudonymous). Contact details
and signatures are encrypted at rest and live in their own tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow

PARTICIPANT_STATUSES = (
    "screening",
    "ineligible",
    "consented",
    "enrolled",
    "completed",
    "withdrawn",
)


class Participant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    code: str = Field(max_length=32, unique=True, index=True)
    status: str = Field(default="screening", max_length=20, index=True)
    protocol_version_id: int | None = Field(default=None, foreign_key="protocol_version.id")
    timezone: str = Field(default="UTC", max_length=64)
    language: str = Field(default="en", max_length=16)
    preferred_channel: str = Field(default="email", max_length=16)
    strata: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    enrolled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawal_reason: str = Field(default="", max_length=500)


class ContactPoint(SQLModel, table=True):
    """A phone number or email address, stored encrypted and readable by coordinators and up.

    `lookup_hash` is a keyed hash of the normalised value, so inbound SMS can be matched to a
    participant without decrypting every row.
    """

    __tablename__ = "contact_point"
    __table_args__ = (UniqueConstraint("participant_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    kind: str = Field(max_length=16)
    value_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    lookup_hash: str = Field(max_length=64, index=True)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opted_out_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Consent(SQLModel, table=True):
    """A signed consent: which document version, which optional items, when, and withdrawal."""

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    document_version: str = Field(max_length=32)
    document_hash: str = Field(max_length=64)
    options: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    signature_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    superseded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Allocation(SQLModel, table=True):
    """The arm a participant was randomised (or, in a preference arm, chose) to."""

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", unique=True)
    arm_id: int = Field(foreign_key="arm.id", index=True)
    stratum: str = Field(default="", max_length=200)
    scheme: str = Field(max_length=32)
    sequence_number: int
    chosen_by_participant: bool = False
    allocated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
