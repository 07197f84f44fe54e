"""The participant journey's progress between steps, and invitation codes.

A participant row exists only once screening is passed; `EnrollmentProgress` then records which
steps of the journey are done, so that each step can refuse to run before the ones it needs.
People who are not eligible leave no row here or anywhere else (only a count in the audit log).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class EnrollmentProgress(SQLModel, table=True):
    """One participant's way through screening, consent, baseline, contacts and enrollment.

    `screening_answers` are the eligibility answers of an eligible person (needed for strata);
    `baseline` holds the stratification measures answered before allocation, by instrument id:
    `{"who5": {"version", "language", "answers", "scores", "consent_version"}}`.
    """

    __tablename__ = "enrollment_progress"

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", unique=True)
    screening_answers: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    screened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    comprehension_attempts: int = 0
    comprehension_passed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    baseline: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    baseline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    contacts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    preferences_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Invitation(SQLModel, table=True):
    """A single-use invitation code. Only a keyed hash of the code is stored, never the code."""

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    code_hash: str = Field(max_length=64, unique=True)
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(default="", max_length=200)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    participant_id: int | None = Field(default=None, foreign_key="participant.id")
