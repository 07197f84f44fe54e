"""The append-only audit log.

Rows form a hash chain (`event_hash` covers the previous row's hash), and database triggers
refuse UPDATE and DELETE, so neither an edit nor a removal can go unnoticed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    # An entity's history ("everything done to participant P-7K3M9Q") is the common lookup.
    __table_args__ = (Index("ix_audit_event_entity", "entity_type", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=200, index=True)
    action: str = Field(max_length=100, index=True)
    entity_type: str = Field(default="", max_length=64)
    entity_id: str = Field(default="", max_length=100)
    before_hash: str = Field(default="", max_length=64)
    after_hash: str = Field(default="", max_length=64)
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(default="", max_length=64)
    event_hash: str = Field(max_length=64, unique=True)
