"""Studies, the versions of their protocol, and their arms."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class Study(SQLModel, table=True):
    """A trial. Its protocol lives in `ProtocolVersion`; the newest version is in force."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    title: str = Field(max_length=300)
    status: str = Field(default="recruiting", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProtocolVersion(SQLModel, table=True):
    """One version of a study's protocol file, kept verbatim with its content hash.

    Participants record the version they were enrolled under; amendments add a version.
    """

    __tablename__ = "protocol_version"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        UniqueConstraint("study_id", "content_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    number: int
    content_hash: str = Field(max_length=64)
    source: str = Field(sa_column=Column(Text, nullable=False))
    source_name: str = Field(default="", max_length=500)
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    loaded_by: str = Field(default="", max_length=200)


class Arm(SQLModel, table=True):
    """A condition participants are allocated to, such as one assistant configuration."""

    __table_args__ = (UniqueConstraint("study_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    key: str = Field(max_length=64)
    name: str = Field(max_length=200)
    has_assistant: bool = False
    introduced_in_version: int = 1
    retired_in_version: int | None = None
