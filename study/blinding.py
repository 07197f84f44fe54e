"""Unblinding a study: the act that lets researchers compare outcomes between named arms.

Until a study is unblinded, outcomes by arm are shown to everyone under blinded letters
("Arm A"), whatever their role. Unblinding is per study, once, and for good: an investigator
(or admin) holding the `unblind` permission gives a reason, and the act is written to the audit
log as `study.unblinded` with that reason. Whether a study is unblinded is read from the audit
log, which is append-only, so it needs no column of its own and cannot be undone quietly.

The caller checks the permission (as `consent.roster.reveal_contacts` leaves that to its
caller) and commits; functions here add to the caller's session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from . import audit
from .models import AuditEvent, Study

ACTION = "study.unblinded"
MAX_REASON_LENGTH = 1000


class BlindingError(ValueError):
    """An unblinding that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Unblinding:
    """Who unblinded the study, when, and why."""

    actor: str
    at: datetime
    reason: str


def unblinding(session: Session, study_id: int) -> Unblinding | None:
    """The study's unblinding (the first, should a race have recorded two), or None."""
    event = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == ACTION,
            AuditEvent.entity_type == "study",
            AuditEvent.entity_id == str(study_id),
        )
        .order_by(col(AuditEvent.id))
        .limit(1)
    ).first()
    if event is None:
        return None
    return Unblinding(event.actor, event.occurred_at, str(event.details.get("reason", "")))


def is_unblinded(session: Session, study_id: int) -> bool:
    """Whether the study has been unblinded."""
    return unblinding(session, study_id) is not None


def unblind(
    session: Session, study_id: int, *, actor: str, reason: str, now: datetime
) -> Unblinding:
    """Unblind study `study_id` for every researcher, recording `actor` and `reason` in the
    audit log. The caller must already have checked that `actor` holds `unblind`.

    Raises BlindingError for an unknown study, an empty or overlong reason, or a study that is
    already unblinded (the first unblinding stands; a second would only blur the record).
    """
    if session.get(Study, study_id) is None:
        raise BlindingError(f"there is no study with id {study_id}")
    reason = reason.strip()
    if not reason:
        raise BlindingError("give a reason for unblinding; it goes into the audit log")
    if len(reason) > MAX_REASON_LENGTH:
        raise BlindingError(f"the reason must have at most {MAX_REASON_LENGTH} characters")
    earlier = unblinding(session, study_id)
    if earlier is not None:
        raise BlindingError(
            f"the study was already unblinded by {earlier.actor} on {earlier.at:%Y-%m-%d %H:%M} UTC"
        )
    event = audit.record(
        session,
        actor,
        ACTION,
        entity_type="study",
        entity_id=study_id,
        before={"study_id": study_id, "blinded": True},
        after={"study_id": study_id, "blinded": False},
        details={"reason": reason},
        at=now,
    )
    return Unblinding(event.actor, event.occurred_at, reason)
