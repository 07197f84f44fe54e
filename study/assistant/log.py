"""The interaction log: one row per turn, from the chat proxy or the ingest API.

`record_interaction` records one turn (the chat page's writer); `ingest.ingest_events` applies
the same rules, built from the functions here, to a batch from the ingest API. Both are
idempotent by `(study_id, event_id)`, so a client may resend a turn (after a timeout, say)
without creating a second one; resending the same event id with different data is an error,
never a silent overwrite. Metadata (who, when, session, role, latency, tokens, model, prompt
version) is always kept. The text is kept only while the participant's active consent says yes
to `store_chat_content`, and then with phone numbers and email addresses redacted and the
result encrypted with the PII vault.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

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
    check_turn(locals())
    if participant.study_id != study_id:
        raise InteractionError(f"participant {participant.code} is not in study {study_id}")
    if arm_id is None:
        arm_id = session.exec(
            select(Allocation.arm_id).where(Allocation.participant_id == participant.id)
        ).first()
    values = turn_values(locals(), participant_id=participant.id, arm_id=arm_id)
    redacted = redact(content) if content is not None else None

    existing = _find(session, study_id, event_id)
    if existing is None:
        refusal = refusal_for(participant, occurred_at)
        if refusal:
            raise InteractionError(refusal)
        stored = None
        if redacted is not None and stores_content(session, participant):
            stored = vault.encrypt(redacted)
        if insert_turns(session, [{**values, "content_encrypted": stored}]):
            return _find(session, study_id, event_id), True
        existing = _find(session, study_id, event_id)  # another writer won the race
    differing = differences(existing, values, redacted, vault)
    if differing:
        raise InteractionConflict(conflict_message(event_id, differing))
    return existing, False


def turn_values(arguments: Mapping, *, participant_id: int, arm_id: int | None) -> dict:
    """The Interaction columns of a turn (all but the content) from `record_interaction`'s
    arguments, which `check_turn` has accepted."""
    names = ("study_id", "event_id", "session_id", "role", "source", "occurred_at")
    names += ("latency_ms", "prompt_tokens", "completion_tokens", "model", "prompt_version")
    return {
        **{name: arguments[name] for name in names},
        "participant_id": participant_id,
        "arm_id": arm_id,
    }


def refusal_for(participant: Participant, occurred_at: datetime) -> str:
    """Why a new turn of this participant at this time cannot be recorded ('' if it can)."""
    if participant.status not in _RECORDING:
        return f"participant {participant.code} is {participant.status}: no turns are recorded"
    enrolled_at = participant.enrolled_at
    if enrolled_at is not None and occurred_at < enrolled_at - CLOCK_SKEW:
        return (
            f"occurred_at {occurred_at.isoformat()} is before participant "
            f"{participant.code} enrolled"
        )
    return ""


def differences(
    existing: Interaction | Mapping, values: Mapping, redacted: str | None, vault: PiiVault
) -> list[str]:
    """The fields in which a resent turn differs from the stored one (text only when both
    have it: the stored one may lack it for want of consent)."""
    stored = dict(existing) if isinstance(existing, Mapping) else existing.model_dump()
    differing = [name for name in _COMPARED if stored[name] != values[name]]
    text = stored.get("content")
    if text is None and stored.get("content_encrypted") is not None:
        text = vault.decrypt(stored["content_encrypted"])
    if redacted is not None and text is not None and text != redacted:
        differing.append("content")
    return differing


def conflict_message(event_id: str, differing: list[str]) -> str:
    return f"event {event_id!r} was already recorded with different {', '.join(differing)}"


def insert_turns(session: Session, rows: list[dict]) -> set[str]:
    """Insert the rows whose event id is new to their study (ON CONFLICT DO NOTHING, so
    concurrent writers cannot both insert one event); returns the event ids inserted."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    table = Interaction.__table__
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["study_id", "event_id"])
        .returning(table.c.event_id)
    )
    # Interaction(...) applies the model's defaults (recorded_at) as the ORM would. One
    # statement with many parameter sets: SQLAlchemy batches it into multi-row INSERTs.
    parameters = [Interaction(**row).model_dump(exclude={"id"}) for row in rows]
    return set(session.execute(statement, parameters).scalars())


def stores_content(session: Session, participant: Participant) -> bool:
    """Whether the participant's active consent allows storing the text of their chats."""
    consent = current_consent(session, participant)
    return bool(consent is not None and consent.options.get(CONTENT_CONSENT_ITEM, False))


def decrypt_content(interaction: Interaction, vault: PiiVault) -> str | None:
    """The stored (redacted) text of a turn, or None when none was stored."""
    if interaction.content_encrypted is None:
        return None
    return vault.decrypt(interaction.content_encrypted)


def check_turn(args: Mapping) -> None:
    """Raise InteractionError unless the turn's fields are well-formed."""
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
