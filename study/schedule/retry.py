"""Retrying a failed send: a coordinator's "try again" on a message the provider refused or the
dispatcher gave up on.

    outcome = retry_failed(session, [message_id, ...], now=now, actor="researcher:...")

A retry never edits the failed row: it stays `failed` (or `undelivered`), so compliance still
counts the failure and the outbox keeps the history. A new `pending` row with the same
participant, occasion, channel and purpose is queued, due at once; the dispatcher then re-checks
everything as for any send (participant enrolled, consent, contact not opted out, window open,
quiet hours, rate budget) and renders a fresh text and link. Each retry is audited
(`message.retried`) naming both rows.

Refused (with the reason, nothing written): a message that is not failed or undelivered, one
from another study, one whose window has closed, and one that already has a retry waiting
(`pending` or `sending`), so a double click queues one message, not two. The first statement
is a write to the failed row, which serialises concurrent retries of it (row lock on
PostgreSQL, the write lock on SQLite) before the duplicate check reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from study import audit
from study.models import Occasion, OutboundMessage, Participant

RETRYABLE = ("failed", "undelivered")
WAITING = ("pending", "sending")


@dataclass
class RetryOutcome:
    """New message ids by retried message id, and the reasons for those refused."""

    requeued: dict[int, int] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)


def retry_failed(
    session: Session,
    message_ids: Iterable[int],
    *,
    now: datetime,
    actor: str,
    study_id: int | None = None,
) -> RetryOutcome:
    """Queue a fresh attempt of each failed message; in the caller's transaction, audited.

    `study_id`, when given, refuses messages of participants in other studies (a dashboard
    acts within the study it shows).
    """
    if not actor.strip():
        raise ValueError("an actor is required: every retry is audited")
    outcome = RetryOutcome()
    for message_id in dict.fromkeys(message_ids):
        reason = _retry_one(session, message_id, now=now, actor=actor, study_id=study_id)
        if isinstance(reason, int):
            outcome.requeued[message_id] = reason
        else:
            outcome.refused[message_id] = reason
    return outcome


def _retry_one(
    session: Session, message_id: int, *, now: datetime, actor: str, study_id: int | None
) -> int | str:
    held = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id, col(OutboundMessage.status).in_(RETRYABLE))
        .values(status=OutboundMessage.status)  # a no-op write: it only takes the lock
        .execution_options(synchronize_session=False)
    )
    if held.rowcount != 1:
        return "not a failed message"
    failed = session.get(OutboundMessage, message_id)
    session.refresh(failed)
    participant = session.get(Participant, failed.participant_id)
    if study_id is not None and participant.study_id != study_id:
        return "not a message of this study"
    occasion = session.get(Occasion, failed.occasion_id) if failed.occasion_id else None
    closes = failed.expires_at or (occasion.closes_at if occasion else None)
    if closes is not None and closes <= now:
        return "its window has closed"
    waiting = session.exec(
        select(OutboundMessage.id).where(
            OutboundMessage.participant_id == failed.participant_id,
            OutboundMessage.occasion_id == failed.occasion_id,
            OutboundMessage.channel == failed.channel,
            OutboundMessage.purpose == failed.purpose,
            col(OutboundMessage.status).in_(WAITING),
        )
    ).first()
    if waiting is not None:
        return f"a retry is already queued (message {waiting})"
    fresh = OutboundMessage(
        participant_id=failed.participant_id,
        occasion_id=failed.occasion_id,
        channel=failed.channel,
        purpose=failed.purpose,
        # Occasion messages are re-rendered at send time; others carry their text verbatim.
        body=failed.body if failed.occasion_id is None else "",
        status="pending",
        send_after=now,
        expires_at=failed.expires_at,
        created_at=now,
    )
    session.add(fresh)
    session.flush()
    audit.record(
        session,
        actor,
        "message.retried",
        entity_type="outbound_message",
        entity_id=failed.id,
        details={
            "participant": participant.code,
            "new_message_id": fresh.id,
            "channel": failed.channel,
            "purpose": failed.purpose,
            "failed_status": failed.status,
            "attempts": failed.attempts,
        },
        at=now,
    )
    return fresh.id
