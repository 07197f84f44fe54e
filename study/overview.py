"""Read-side summaries of studies for researcher pages and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from .models import Allocation, Arm, Participant, ProtocolVersion, Study


@dataclass(frozen=True)
class ArmSummary:
    key: str
    name: str
    has_assistant: bool
    allocated: int
    retired: bool


@dataclass(frozen=True)
class StudySummary:
    study: Study
    current_version: ProtocolVersion | None
    version_count: int
    participants_by_status: dict[str, int] = field(default_factory=dict)
    arms: list[ArmSummary] = field(default_factory=list)

    @property
    def enrolled(self) -> int:
        counted = ("enrolled", "completed", "withdrawn")
        return sum(self.participants_by_status.get(status, 0) for status in counted)


def list_studies(session: Session) -> list[StudySummary]:
    """Every study with its current protocol version and participant counts, newest first."""
    studies = session.exec(select(Study).order_by(col(Study.created_at).desc())).all()
    return [summarise(session, study) for study in studies]


def summarise(session: Session, study: Study) -> StudySummary:
    versions = session.exec(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == study.id)
        .order_by(col(ProtocolVersion.number).desc())
    ).all()
    by_status = dict(
        session.exec(
            select(Participant.status, func.count())
            .where(Participant.study_id == study.id)
            .group_by(Participant.status)
        ).all()
    )
    allocated = dict(
        session.exec(
            select(Allocation.arm_id, func.count())
            .join(Arm, col(Arm.id) == Allocation.arm_id)
            .where(Arm.study_id == study.id)
            .group_by(Allocation.arm_id)
        ).all()
    )
    arms = session.exec(select(Arm).where(Arm.study_id == study.id).order_by(col(Arm.id))).all()
    return StudySummary(
        study=study,
        current_version=versions[0] if versions else None,
        version_count=len(versions),
        participants_by_status=by_status,
        arms=[
            ArmSummary(
                key=arm.key,
                name=arm.name,
                has_assistant=arm.has_assistant,
                allocated=allocated.get(arm.id, 0),
                retired=arm.retired_in_version is not None,
            )
            for arm in arms
        ],
    )


def versions_of(session: Session, study_id: int) -> list[ProtocolVersion]:
    return list(
        session.exec(
            select(ProtocolVersion)
            .where(ProtocolVersion.study_id == study_id)
            .order_by(col(ProtocolVersion.number).desc())
        ).all()
    )
