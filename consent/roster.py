"""The researcher's view of a study's participants, and audited access to contact details.

Rows carry pseudonymous facts only (code, status, dates, arm, consent version). Contact details
are decrypted separately by `reveal_contacts`, which writes an audit event naming who looked at
whose details, so that each look at personal data leaves a trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from study import audit
from study.models import Allocation, Arm, Consent, ContactPoint, Participant
from study.pii import PiiVault
from study.protocol import Protocol

from .signing import TAKING_PART


@dataclass(frozen=True)
class ParticipantRow:
    """One line of the participant list."""

    id: int
    code: str
    status: str
    created_at: datetime
    enrolled_at: datetime | None
    withdrawn_at: datetime | None
    arm_key: str | None
    arm_name: str | None
    consent_version: str | None
    needs_reconsent: bool | None


@dataclass(frozen=True)
class ContactDetail:
    kind: str
    value: str
    verified: bool
    opted_out: bool


@dataclass(frozen=True)
class Roster:
    rows: list[ParticipantRow]
    total: int
    page: int
    pages: int


def list_participants(
    session: Session,
    study_id: int,
    protocol: Protocol | None,
    *,
    status: str | None = None,
    reconsent_only: bool = False,
    page: int = 1,
    per_page: int = 100,
) -> Roster:
    """A page of the study's participants, oldest first, optionally filtered.

    `needs_reconsent` is None when no valid protocol is in force to compare against.
    """
    query = select(Participant).where(Participant.study_id == study_id)
    if status:
        query = query.where(Participant.status == status)
    if reconsent_only:
        if protocol is None:
            return Roster([], 0, 1, 1)
        active = _active_consents()
        query = (
            query.outerjoin(active, active.c.participant_id == Participant.id)
            .where(col(Participant.status).in_(TAKING_PART))
            .where(
                active.c.document_version.is_(None)
                | (active.c.document_version != protocol.model.consent.version)
            )
        )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    participants = session.exec(
        query.order_by(col(Participant.created_at), col(Participant.id))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    ids = [p.id for p in participants]
    arms = {
        participant_id: (key, name)
        for participant_id, key, name in session.exec(
            select(Allocation.participant_id, Arm.key, Arm.name)
            .join(Arm, col(Arm.id) == Allocation.arm_id)
            .where(col(Allocation.participant_id).in_(ids))
        )
    }
    versions = {
        participant_id: version
        for participant_id, version in session.exec(
            select(Consent.participant_id, Consent.document_version)
            .where(
                col(Consent.participant_id).in_(ids),
                col(Consent.superseded_at).is_(None),
                col(Consent.withdrawn_at).is_(None),
            )
            .order_by(col(Consent.signed_at))
        )
    }
    in_force = protocol.model.consent.version if protocol is not None else None
    rows = []
    for p in participants:
        version = versions.get(p.id)
        reconsent = None
        if in_force is not None:
            reconsent = p.status in TAKING_PART and version != in_force
        arm = arms.get(p.id)
        rows.append(
            ParticipantRow(
                id=p.id,
                code=p.code,
                status=p.status,
                created_at=p.created_at,
                enrolled_at=p.enrolled_at,
                withdrawn_at=p.withdrawn_at,
                arm_key=arm[0] if arm else None,
                arm_name=arm[1] if arm else None,
                consent_version=version,
                needs_reconsent=reconsent,
            )
        )
    return Roster(rows, total, page, pages)


def _active_consents():
    return (
        select(Consent.participant_id, Consent.document_version)
        .where(col(Consent.superseded_at).is_(None), col(Consent.withdrawn_at).is_(None))
        .subquery("active_consent")
    )


def reveal_contacts(
    session: Session,
    vault: PiiVault,
    participants: Sequence[Participant | ParticipantRow],
    *,
    actor: str,
    now: datetime,
    study_id: int | None = None,
) -> dict[int, list[ContactDetail]]:
    """Decrypt the contact details of `participants`, by participant id; audited.

    The caller must already have checked that `actor` may see contact details. One event per
    call (`participant.view_contacts`) lists the codes whose details were shown; it is about the
    participant, or about the study (`study_id`) when a page of its list was shown.
    """
    ids = [p.id for p in participants]
    if not ids:
        return {}
    shown: dict[int, list[ContactDetail]] = {pid: [] for pid in ids}
    for point in session.exec(
        select(ContactPoint)
        .where(col(ContactPoint.participant_id).in_(ids))
        .order_by(col(ContactPoint.kind))
    ):
        shown[point.participant_id].append(
            ContactDetail(
                kind=point.kind,
                value=vault.decrypt(point.value_encrypted),
                verified=point.verified_at is not None,
                opted_out=point.opted_out_at is not None,
            )
        )
    if study_id is None and len(participants) > 1:
        raise ValueError("name the study whose participants' contact details are shown")
    audit.record(
        session,
        actor,
        "participant.view_contacts",
        entity_type="participant" if study_id is None else "study",
        entity_id=participants[0].id if study_id is None else study_id,
        details={"participants": [p.code for p in participants]},
        at=now,
    )
    return shown
