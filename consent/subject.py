"""Data-subject requests: export everything held on one participant, and erase it.

Erasure removes what identifies a person or what they wrote: contact points, the typed-name
signature, free-text answers, chat content, message bodies and the withdrawal reason. With
`keep_pseudonymous_data=False` (full erasure) it also deletes their responses, chat metadata,
schedule and messages. Always kept: the participant row (pseudonymous code, status and dates,
so recruitment and CONSORT counts stay true), the fact and version of each consent, and the
allocation (removing it would break the randomisation sequence that later allocations and the
concealment audit depend on). The audit log records counts, never erased values.

Erased values are overwritten in the database: SQLite runs with `secure_delete`, and
`purge_erased_residues` checkpoints the write-ahead log after the erasure commits so that no
copy lingers in the -wal file. Backups are outside the database's reach (see docs/consent.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from study import audit
from study.assistant.erasure import erase_chat_texts
from study.models import (
    Allocation,
    Arm,
    ChatTurn,
    Consent,
    ContactPoint,
    EnrollmentProgress,
    InboundMessage,
    Interaction,
    ItemResponse,
    MemoryNote,
    Occasion,
    OutboundMessage,
    Participant,
    ParticipantGoal,
    ProtocolVersion,
    Response,
    Study,
)
from study.pii import PiiError, PiiVault

from .signing import consent_history

EXPORT_FORMAT = "flourish-subject-export/1"
# What an erased signature is replaced by: the column is required, and an empty token can never
# be mistaken for ciphertext.
ERASED_SIGNATURE = b""
# The statuses of someone still taking part: their data cannot be erased from under them.
_ACTIVE = ("consented", "enrolled")


class ErasureError(ValueError):
    """An erasure that cannot be carried out as asked; the message says what to do first."""


@dataclass(frozen=True)
class ErasureReport:
    """How many values and rows one erasure removed (the audit event records the same)."""

    participant_code: str
    keep_pseudonymous_data: bool
    contact_points: int = 0
    signatures: int = 0
    free_text_answers: int = 0
    chat_contents: int = 0
    outbound_bodies: int = 0
    inbound_bodies: int = 0
    withdrawal_reason: int = 0
    responses_deleted: int = 0
    item_responses_deleted: int = 0
    interactions_deleted: int = 0
    occasions_deleted: int = 0
    outbound_deleted: int = 0
    inbound_deleted: int = 0
    enrollment_records_deleted: int = 0

    def counts(self) -> dict[str, int]:
        return {
            key: value
            for key, value in asdict(self).items()
            if key not in ("participant_code", "keep_pseudonymous_data")
        }

    @property
    def total(self) -> int:
        return sum(self.counts().values())


def erase_subject(
    session: Session,
    *,
    participant: Participant,
    now: datetime,
    actor: str,
    keep_pseudonymous_data: bool = False,
) -> ErasureReport:
    """Erase the participant's personal data in the caller's transaction; audited.

    The participant must not be taking part (withdraw them first: erasing the contact details of
    someone still enrolled would silently stop their study). Erasing twice is harmless and
    reports zero counts the second time. After the caller commits, call
    `purge_erased_residues(engine)`.
    """
    if participant.status in _ACTIVE:
        raise ErasureError(
            f"participant {participant.code} is {participant.status}: withdraw them before "
            "erasing their data"
        )
    pid = participant.id
    response_ids = select(Response.id).where(Response.participant_id == pid)
    counts: dict[str, int] = {}

    counts["contact_points"] = _run(
        session, delete(ContactPoint).where(col(ContactPoint.participant_id) == pid)
    )
    counts["signatures"] = _run(
        session,
        update(Consent)
        .where(col(Consent.participant_id) == pid, func.length(Consent.signature_encrypted) > 0)
        .values(signature_encrypted=ERASED_SIGNATURE),
    )
    counts["free_text_answers"] = _run(
        session,
        update(ItemResponse)
        .where(col(ItemResponse.response_id).in_(response_ids), col(ItemResponse.text).isnot(None))
        .values(text=None),
    )
    counts["chat_contents"] = erase_chat_content(session, participant)
    counts["outbound_bodies"] = _run(
        session,
        update(OutboundMessage)
        .where(col(OutboundMessage.participant_id) == pid, OutboundMessage.body != "")
        .values(body=""),
    )
    counts["inbound_bodies"] = _run(
        session,
        update(InboundMessage)
        .where(col(InboundMessage.participant_id) == pid, InboundMessage.body != "")
        .values(body=""),
    )
    counts["withdrawal_reason"] = int(bool(participant.withdrawal_reason))
    participant.withdrawal_reason = ""
    session.add(participant)

    if not keep_pseudonymous_data:
        counts["item_responses_deleted"] = _run(
            session, delete(ItemResponse).where(col(ItemResponse.response_id).in_(response_ids))
        )
        counts["responses_deleted"] = _run(
            session, delete(Response).where(col(Response.participant_id) == pid)
        )
        counts["interactions_deleted"] = _run(
            session, delete(Interaction).where(col(Interaction.participant_id) == pid)
        )
        counts["outbound_deleted"] = _run(
            session, delete(OutboundMessage).where(col(OutboundMessage.participant_id) == pid)
        )
        counts["inbound_deleted"] = _run(
            session, delete(InboundMessage).where(col(InboundMessage.participant_id) == pid)
        )
        counts["occasions_deleted"] = _run(
            session, delete(Occasion).where(col(Occasion.participant_id) == pid)
        )
        # Screening answers and the pre-randomisation baseline are answers like any other.
        counts["enrollment_records_deleted"] = _run(
            session,
            delete(EnrollmentProgress).where(col(EnrollmentProgress.participant_id) == pid),
        )
    session.flush()
    report = ErasureReport(participant.code, keep_pseudonymous_data, **counts)
    audit.record(
        session,
        actor,
        "participant.erase",
        entity_type="participant",
        entity_id=pid,
        details={
            "participant": participant.code,
            "keep_pseudonymous_data": keep_pseudonymous_data,
            "counts": report.counts(),
        },
        at=now,
    )
    return report


def erase_chat_content(session: Session, participant: Participant) -> int:
    """Blank the stored text of the participant's assistant chats; metadata stays.

    Both copies: the interaction log's (research data, kept only with consent) and the chat's
    own working copy, memory notes and goals (`study.assistant.erasure`). Returns how many rows.
    """
    logged = _run(
        session,
        update(Interaction)
        .where(
            col(Interaction.participant_id) == participant.id,
            col(Interaction.content_encrypted).isnot(None),
        )
        .values(content_encrypted=None),
    )
    return logged + sum(erase_chat_texts(session, participant).values())


def purge_erased_residues(engine: Engine) -> dict:
    """Make erased values unrecoverable from the database's own files; run after commit.

    SQLite: checkpoint the write-ahead log into the (secure-deleting) main file and truncate it,
    since the -wal file otherwise still holds the pages as they were before the erasure.
    PostgreSQL: VACUUM the affected tables so the old row versions are reclaimed.
    Returns what the database reported.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            busy, log_frames, checkpointed = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(TRUNCATE)"
            ).one()
        return {"busy": busy, "log_frames": log_frames, "checkpointed": checkpointed}
    if engine.dialect.name == "postgresql":
        tables = (
            "contact_point",
            "consent",
            "item_response",
            "response",
            "interaction",
            "outbound_message",
            "inbound_message",
            "occasion",
            "participant",
        )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in tables:
                connection.execute(text(f"VACUUM {table}"))
        return {"vacuumed": list(tables)}
    return {}


def export_subject(
    session: Session,
    vault: PiiVault,
    participant: Participant,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Everything held on one participant, as a JSON-ready dict; audited as `participant.export`.

    Contact details, the signature and stored chat content are decrypted. `actor` defaults to
    the participant themself (a copy of their own data). The allocation's sequence number is
    left out: it is bookkeeping of the randomisation list, not data about the person.
    """
    now = now or datetime.now(UTC)
    pid = participant.id
    study = session.get(Study, participant.study_id)
    version = (
        session.get(ProtocolVersion, participant.protocol_version_id)
        if participant.protocol_version_id
        else None
    )
    occasions = session.exec(
        select(Occasion).where(Occasion.participant_id == pid).order_by(col(Occasion.due_at))
    ).all()
    occasion_keys = {o.id: {"schedule_key": o.schedule_key, "wave": o.wave} for o in occasions}
    responses = session.exec(
        select(Response)
        .where(Response.participant_id == pid)
        .order_by(col(Response.started_at), col(Response.id))
    ).all()
    items_by_response: dict[int, list[ItemResponse]] = {}
    if responses:
        for item in session.exec(
            select(ItemResponse)
            .where(col(ItemResponse.response_id).in_([r.id for r in responses]))
            .order_by(col(ItemResponse.id))
        ):
            items_by_response.setdefault(item.response_id, []).append(item)

    allocation = session.exec(select(Allocation).where(Allocation.participant_id == pid)).first()
    arm = session.get(Arm, allocation.arm_id) if allocation else None

    export = {
        "format": EXPORT_FORMAT,
        "exported_at": _iso(now),
        "participant": {
            "code": participant.code,
            "study": study.slug if study else None,
            "status": participant.status,
            "protocol_version": version.number if version else None,
            "created_at": _iso(participant.created_at),
            "enrolled_at": _iso(participant.enrolled_at),
            "withdrawn_at": _iso(participant.withdrawn_at),
            "withdrawal_reason": participant.withdrawal_reason,
            "timezone": participant.timezone,
            "language": participant.language,
            "preferred_channel": participant.preferred_channel,
            "strata": dict(participant.strata or {}),
        },
        "contact_points": [
            {
                "kind": point.kind,
                "value": _decrypt(vault, point.value_encrypted),
                "verified_at": _iso(point.verified_at),
                "opted_out_at": _iso(point.opted_out_at),
                "created_at": _iso(point.created_at),
            }
            for point in session.exec(
                select(ContactPoint)
                .where(ContactPoint.participant_id == pid)
                .order_by(col(ContactPoint.kind))
            )
        ],
        "consents": [
            {
                "document_version": consent.document_version,
                "document_sha256": consent.document_hash,
                "options": dict(consent.options or {}),
                "signature": _decrypt(vault, consent.signature_encrypted),
                "signature_erased": not consent.signature_encrypted,
                "signed_at": _iso(consent.signed_at),
                "superseded_at": _iso(consent.superseded_at),
                "withdrawn_at": _iso(consent.withdrawn_at),
            }
            for consent in consent_history(session, participant)
        ],
        "enrollment": _enrollment_record(
            session.exec(
                select(EnrollmentProgress).where(EnrollmentProgress.participant_id == pid)
            ).first()
        ),
        "allocation": None
        if allocation is None
        else {
            "arm": arm.key if arm else None,
            "arm_name": arm.name if arm else None,
            "stratum": allocation.stratum,
            "scheme": allocation.scheme,
            "chosen_by_participant": allocation.chosen_by_participant,
            "allocated_at": _iso(allocation.allocated_at),
        },
        "occasions": [
            {
                "schedule_key": o.schedule_key,
                "wave": o.wave,
                "kind": o.kind,
                "instruments": list(o.instruments or []),
                "due_at": _iso(o.due_at),
                "closes_at": _iso(o.closes_at),
                "status": o.status,
                "opened_at": _iso(o.opened_at),
                "completed_at": _iso(o.completed_at),
            }
            for o in occasions
        ],
        "responses": [
            {
                "occasion": occasion_keys.get(r.occasion_id),
                "instrument_id": r.instrument_id,
                "instrument_version": r.instrument_version,
                "language": r.language,
                "channel": r.channel,
                "consent_version": r.consent_version,
                "status": r.status,
                "started_at": _iso(r.started_at),
                "submitted_at": _iso(r.submitted_at),
                "items": [
                    {
                        "item_id": item.item_id,
                        "value": item.value,
                        "text": item.text,
                        "answered_at": _iso(item.answered_at),
                    }
                    for item in items_by_response.get(r.id, [])
                ],
            }
            for r in responses
        ],
        "interactions": [
            {
                "event_id": turn.event_id,
                "session_id": turn.session_id,
                "role": turn.role,
                "source": turn.source,
                "occurred_at": _iso(turn.occurred_at),
                "latency_ms": turn.latency_ms,
                "prompt_tokens": turn.prompt_tokens,
                "completion_tokens": turn.completion_tokens,
                "model": turn.model,
                "content": _decrypt(vault, turn.content_encrypted),
            }
            for turn in session.exec(
                select(Interaction)
                .where(Interaction.participant_id == pid)
                .order_by(col(Interaction.occurred_at), col(Interaction.id))
            )
        ],
        "assistant": {
            "chat": [
                {
                    "sent_at": _iso(turn.sent_at),
                    "answered_at": _iso(turn.answered_at),
                    "status": turn.status,
                    "message": _decrypt(vault, turn.message_encrypted),
                    "reply": _decrypt(vault, turn.reply_encrypted),
                }
                for turn in session.exec(
                    select(ChatTurn)
                    .where(ChatTurn.participant_id == pid)
                    .order_by(col(ChatTurn.sent_at), col(ChatTurn.id))
                )
            ],
            "memory_notes": [
                {
                    "text": _decrypt(vault, note.text_encrypted),
                    "source": note.source,
                    "created_at": _iso(note.created_at),
                    "updated_at": _iso(note.updated_at),
                }
                for note in session.exec(
                    select(MemoryNote)
                    .where(MemoryNote.participant_id == pid)
                    .order_by(col(MemoryNote.created_at), col(MemoryNote.id))
                )
            ],
            "goals": [
                {
                    "text": _decrypt(vault, goal.text_encrypted),
                    "created_at": _iso(goal.created_at),
                    "updated_at": _iso(goal.updated_at),
                }
                for goal in session.exec(
                    select(ParticipantGoal)
                    .where(ParticipantGoal.participant_id == pid)
                    .order_by(col(ParticipantGoal.created_at), col(ParticipantGoal.id))
                )
            ],
        },
        "messages": {
            "outbound": [
                {
                    "channel": m.channel,
                    "purpose": m.purpose,
                    "occasion": occasion_keys.get(m.occasion_id) if m.occasion_id else None,
                    "body": m.body,
                    "status": m.status,
                    "send_after": _iso(m.send_after),
                    "sent_at": _iso(m.sent_at),
                    "created_at": _iso(m.created_at),
                }
                for m in session.exec(
                    select(OutboundMessage)
                    .where(OutboundMessage.participant_id == pid)
                    .order_by(col(OutboundMessage.send_after), col(OutboundMessage.id))
                )
            ],
            "inbound": [
                {"channel": m.channel, "body": m.body, "received_at": _iso(m.received_at)}
                for m in session.exec(
                    select(InboundMessage)
                    .where(InboundMessage.participant_id == pid)
                    .order_by(col(InboundMessage.received_at), col(InboundMessage.id))
                )
            ],
        },
    }
    audit.record(
        session,
        actor or f"participant:{participant.code}",
        "participant.export",
        entity_type="participant",
        entity_id=pid,
        details={
            "participant": participant.code,
            "counts": {
                "contact_points": len(export["contact_points"]),
                "consents": len(export["consents"]),
                "occasions": len(export["occasions"]),
                "responses": len(export["responses"]),
                "interactions": len(export["interactions"]),
                "outbound_messages": len(export["messages"]["outbound"]),
                "inbound_messages": len(export["messages"]["inbound"]),
            },
        },
        at=now,
    )
    return export


def _run(session: Session, statement) -> int:
    return session.execute(statement).rowcount or 0


def _decrypt(vault: PiiVault, token: bytes | None) -> str | None:
    if not token:
        return None
    try:
        return vault.decrypt(token)
    except PiiError:
        # A wrong key must not make the whole export fail silently or partially: say so.
        raise PiiError(
            "a stored value cannot be decrypted: is FLOURISH_PII_KEY the key this study used?"
        ) from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _enrollment_record(progress: EnrollmentProgress | None) -> dict | None:
    """Screening answers, comprehension attempts and the baseline measured before allocation."""
    if progress is None:
        return None
    return {
        "screening_answers": dict(progress.screening_answers or {}),
        "screened_at": _iso(progress.screened_at),
        "comprehension_attempts": progress.comprehension_attempts,
        "comprehension_passed_at": _iso(progress.comprehension_passed_at),
        "baseline": dict(progress.baseline or {}),
        "baseline_at": _iso(progress.baseline_at),
        "contacts_at": _iso(progress.contacts_at),
        "preferences_at": _iso(progress.preferences_at),
    }
