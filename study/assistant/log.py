"""The interaction log: one row per turn, from the chat proxy or the ingest API.

`record_interaction` is the only writer. It is idempotent by `(study_id, event_id)`, so a client
may resend a turn (after a timeout, say) without creating a second one; resending the same event
id with different data is an error, never a silent overwrite. Metadata (who, when, session,
role, latency, tokens, model, prompt version) is always kept. The text is kept only while the
participant's active consent says yes to `store_chat_content`, and then with phone numbers and
email addresses redacted and the result encrypted with the PII vault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from consent.signing import current_consent
from study.models import Allocation, Interaction, Participant
from study.pii import PiiVault

from .redaction import redact

ROLES = ("user", "assistant", "system", "tool")
SOURCES = ("proxy", "ingest")
CONTENT_CONSENT_ITEM = "store_chat_content"
# How far a client's clock may be off ours before a turn's time is implausible.
CLOCK_SKEW = timedelta(minutes=5)
# Statuses under which turns are taken: allocated to an arm and not withdrawn. Completed
# participants may still send turns that happened before completion through the ingest API.
_RECORDING = ("enrolled", "completed")
# Lengths of the Interaction columns, checked here so that callers get a clear error.
_MAX_LENGTHS = {"event_id": 100, "session_id": 100, "model": 200, "prompt_version": 64}
# The fields two sendings of one event must agree on (content is compared separately).
_COMPARED = (
    "participant_id",
    "session_id",
    "role",
    "source",
    "occurred_at",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "model",
    "prompt_version",
    "arm_id",
)


class InteractionError(ValueError):
    """A turn that cannot be recorded as given; the message says why."""


class InteractionConflict(InteractionError):
    """An event id already recorded with different data."""


def record_interaction(
    session: Session,
    *,
    vault: PiiVault,
    study_id: int,
    participant: Participant,
    event_id: str,
    session_id: str,
    role: str,
    occurred_at: datetime,
    source: str,
    content: str | None = None,
    latency_ms: int | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    model: str = "",
    prompt_version: str = "",
    arm_id: int | None = None,
) -> tuple[Interaction, bool]:
    """Record one turn in the caller's transaction; returns `(interaction, created)`.

    - Idempotent by `(study_id, event_id)`: an event already recorded with the same data
      returns the stored row and `created=False`; with different data it raises
      InteractionConflict. Concurrent inserts of one event id are safe (the database's unique
      constraint decides, and the loser reads the winner's row).
    - `participant` must belong to `study_id` and be enrolled or completed; withdrawn
      participants (and anyone not yet allocated) are refused with InteractionError, and so
      are turns more than CLOCK_SKEW before the participant's enrollment.
    - `arm_id` defaults to the participant's allocation; `occurred_at` must be timezone-aware;
      `role` is one of ROLES, `source` one of SOURCES (`proxy` for the chat page, `ingest` for
      the API); token counts and latency must not be negative.
    - `content` is stored only while the participant's active consent has `store_chat_content`
      true, redacted (`redaction.redact`) and then encrypted with `vault`; otherwise it is
      dropped and only metadata is kept.

    Adds to the session and flushes; never commits, the caller's unit of work decides.
    """
    _check(locals())
    if participant.study_id != study_id:
        raise InteractionError(f"participant {participant.code} is not in study {study_id}")
    if arm_id is None:
        arm_id = session.exec(
            select(Allocation.arm_id).where(Allocation.participant_id == participant.id)
        ).first()
    values = {
        "study_id": study_id,
        "participant_id": participant.id,
        "arm_id": arm_id,
        "event_id": event_id,
        "session_id": session_id,
        "role": role,
        "source": source,
        "occurred_at": occurred_at,
        "latency_ms": latency_ms,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "model": model,
        "prompt_version": prompt_version,
    }
    redacted = redact(content) if content is not None else None

    existing = _find(session, study_id, event_id)
    if existing is None:
        if participant.status not in _RECORDING:
            raise InteractionError(
                f"participant {participant.code} is {participant.status}: no turns are recorded"
            )
        enrolled_at = participant.enrolled_at
        if enrolled_at is not None and occurred_at < enrolled_at - CLOCK_SKEW:
            raise InteractionError(
                f"occurred_at {occurred_at.isoformat()} is before participant "
                f"{participant.code} enrolled"
            )
        stored = None
        if redacted is not None and stores_content(session, participant):
            stored = vault.encrypt(redacted)
        new_id = _insert(session, {**values, "content_encrypted": stored})
        if new_id is not None:
            return session.get(Interaction, new_id), True
        existing = _find(session, study_id, event_id)  # another writer won the race
    _check_same(existing, values, redacted, vault)
    return existing, False


@dataclass(frozen=True)
class EventOutcome:
    """What became of one event of an ingested batch."""

    index: int
    event_id: str
    status: str  # accepted (stored now), duplicate (stored before, same data) or rejected
    reason: str = ""

    def to_dict(self) -> dict:
        outcome = {"index": self.index, "event_id": self.event_id, "status": self.status}
        return {**outcome, "reason": self.reason} if self.reason else outcome


def ingest_events(
    session: Session,
    *,
    vault: PiiVault,
    study_id: int,
    events: Sequence[Mapping],
    now: datetime,
) -> list[EventOutcome]:
    """Record a batch of turns sent by an assistant running elsewhere, in one transaction.

    Each event is a mapping with `record_interaction`'s keyword arguments, except that the
    participant is given by `participant` (their pseudonymous code) and `source` is `ingest`.
    Codes are looked up in `study_id` only, so a code from another study is as unknown as a
    made-up one. Events that cannot be recorded (unknown participant, withdrawn, in the
    future, conflicting with a stored event) are rejected with a reason; the others are stored
    or found to be duplicates. The caller commits.
    """
    codes = {event["participant"] for event in events}
    rows = session.exec(
        select(Participant, Allocation.arm_id)
        .join(Allocation, col(Allocation.participant_id) == Participant.id, isouter=True)
        .where(Participant.study_id == study_id, col(Participant.code).in_(codes))
    ).all()
    participants = {participant.code: (participant, arm_id) for participant, arm_id in rows}
    outcomes = []
    for index, event in enumerate(events):
        fields = {key: value for key, value in event.items() if key != "participant"}
        found = participants.get(event["participant"])
        reason = ""
        if found is None:
            reason = f"unknown participant {event['participant']!r}"
        elif event["occurred_at"] > now + CLOCK_SKEW:
            reason = "occurred_at is in the future"
        if reason:
            outcomes.append(EventOutcome(index, event["event_id"], "rejected", reason))
            continue
        participant, arm_id = found
        try:
            _, created = record_interaction(
                session,
                vault=vault,
                study_id=study_id,
                participant=participant,
                source="ingest",
                arm_id=arm_id,
                **fields,
            )
        except InteractionError as exc:
            outcomes.append(EventOutcome(index, event["event_id"], "rejected", str(exc)))
            continue
        status = "accepted" if created else "duplicate"
        outcomes.append(EventOutcome(index, event["event_id"], status))
    return outcomes


def stores_content(session: Session, participant: Participant) -> bool:
    """Whether the participant's active consent allows storing the text of their chats."""
    consent = current_consent(session, participant)
    return bool(consent is not None and consent.options.get(CONTENT_CONSENT_ITEM, False))


def decrypt_content(interaction: Interaction, vault: PiiVault) -> str | None:
    """The stored (redacted) text of a turn, or None when none was stored."""
    if interaction.content_encrypted is None:
        return None
    return vault.decrypt(interaction.content_encrypted)


def _check(args: dict) -> None:
    if args["role"] not in ROLES:
        raise InteractionError(f"role {args['role']!r}: use one of {', '.join(ROLES)}")
    if args["source"] not in SOURCES:
        raise InteractionError(f"source {args['source']!r}: use one of {', '.join(SOURCES)}")
    occurred_at = args["occurred_at"]
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
        raise InteractionError("occurred_at must be a timezone-aware datetime")
    for name, limit in _MAX_LENGTHS.items():
        value = args[name]
        if not isinstance(value, str):
            raise InteractionError(f"{name} must be a string")
        if len(value) > limit:
            raise InteractionError(f"{name} must have at most {limit} characters")
    if not args["event_id"].strip() or not args["session_id"].strip():
        raise InteractionError("event_id and session_id must not be empty")
    for name in ("latency_ms", "prompt_tokens", "completion_tokens"):
        value = args[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InteractionError(f"{name} must be a whole number")
        if value is not None and value < 0:
            raise InteractionError(f"{name} must not be negative")
    if args["content"] is not None and not isinstance(args["content"], str):
        raise InteractionError("content must be a string")


def _find(session: Session, study_id: int, event_id: str) -> Interaction | None:
    query = select(Interaction).where(
        Interaction.study_id == study_id, Interaction.event_id == event_id
    )
    return session.exec(query).first()


def _insert(session: Session, values: dict) -> int | None:
    """Insert unless the event id exists; the new row's id, or None if it already did."""
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    row = Interaction(**values)  # applies defaults (recorded_at) the same way the ORM would
    data = row.model_dump(exclude={"id"})
    statement = (
        insert(Interaction.__table__)
        .values(**data)
        .on_conflict_do_nothing(index_elements=["study_id", "event_id"])
        .returning(Interaction.__table__.c.id)
    )
    return session.execute(statement).scalar_one_or_none()


def _check_same(existing: Interaction, values: dict, redacted: str | None, vault: PiiVault) -> None:
    differing = [name for name in _COMPARED if getattr(existing, name) != values[name]]
    stored = decrypt_content(existing, vault)
    if redacted is not None and stored is not None and stored != redacted:
        differing.append("content")
    if differing:
        raise InteractionConflict(
            f"event {existing.event_id!r} was already recorded with different "
            f"{', '.join(differing)}"
        )
