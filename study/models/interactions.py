"""The interaction log: every turn a participant has with the assistant of their arm."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class Interaction(SQLModel, table=True):
    """One turn. `content_encrypted` is null unless the participant consented to content storage."""

    __table_args__ = (UniqueConstraint("study_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id")
    participant_id: int = Field(foreign_key="participant.id", index=True)
    arm_id: int | None = Field(default=None, foreign_key="arm.id")
    event_id: str = Field(max_length=100)
    session_id: str = Field(max_length=100, index=True)
    role: str = Field(max_length=16)
    source: str = Field(default="proxy", max_length=16)
    occurred_at: datetime = Field(sa_type=UTCDateTime, index=True)
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str = Field(default="", max_length=200)
    prompt_version: str = Field(default="", max_length=64)
    content_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
