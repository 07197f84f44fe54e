"""Answers: a `Response` per instrument administered at an occasion, an `ItemResponse` per item."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class Response(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("occasion_id", "instrument_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occasion_id: int = Field(foreign_key="occasion.id")
    participant_id: int = Field(foreign_key="participant.id", index=True)
    instrument_id: str = Field(max_length=64)
    instrument_version: str = Field(max_length=200)
    language: str = Field(default="en", max_length=16)
    channel: str = Field(max_length=16)
    consent_version: str = Field(default="", max_length=32)
    status: str = Field(default="partial", max_length=16)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ItemResponse(SQLModel, table=True):
    __tablename__ = "item_response"
    __table_args__ = (UniqueConstraint("response_id", "item_id"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="response.id", index=True)
    item_id: str = Field(max_length=64)
    value: float | None = None
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    answered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
