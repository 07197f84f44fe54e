"""Batches of turns from assistants that run elsewhere (the service behind the ingest API).

`ingest_events` applies `record_interaction`'s rules (log.py) to a whole batch with a fixed
number of queries: the batch's participants, their consents and the event ids already stored
are read once, and the new turns are inserted with multi-row INSERTs. A batch of 500 turns
thereby costs a handful of round trips instead of four per turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from study.models import Allocation, Consent, Interaction, Participant
from study.pii import PiiVault

from .log import (
    CLOCK_SKEW,
    CONTENT_CONSENT_ITEM,
    InteractionError,
    check_turn,
    conflict_message,
    differences,
    insert_turns,
    refusal_for,
    turn_values,
)
from .redaction import redact


@dataclass(frozen=True)
class EventOutcome:
    """What became of one event of a batch."""

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
    """Record a batch of turns in the caller's transaction; the outcome of each, in order.

    Each event is a mapping of `record_interaction`'s keyword arguments, except that the
    participant is given by `participant` (their pseudonymous code) and `source` is `ingest`.
    Codes are looked up in `study_id` only, so a code of another study is as unknown as a
    made-up one. Events that cannot be recorded (unknown participant, withdrawn, in the future,
    malformed, or conflicting with a stored event or an earlier one of the batch) are rejected
    with a reason; the others are stored (`accepted`) or found stored already (`duplicate`).
    The caller commits.
    """
    people = _participants(session, study_id, {event["participant"] for event in events})
    consents = _content_consents(session, [person for person, _ in people.values()])
    stored = _stored(session, study_id, [event["event_id"] for event in events])
    pending: dict[str, tuple[dict, str | None]] = {}  # event id: (values, redacted text)
    keep_text: set[str] = set()  # pending events whose text may be stored
    outcomes: list[EventOutcome] = []

    for index, event in enumerate(events):
        event_id = event["event_id"]
        found = people.get(event["participant"])
        if found is None:
            outcomes.append(
                _rejected(index, event_id, f"unknown participant {event['participant']!r}")
            )
            continue
        participant, arm_id = found
        arguments = {**_OPTIONAL, **event, "study_id": study_id, "source": "ingest"}
        try:
            check_turn(arguments)
        except InteractionError as exc:
            outcomes.append(_rejected(index, event_id, str(exc)))
            continue
        values = turn_values(arguments, participant_id=participant.id, arm_id=arm_id)
        content = arguments["content"]
        redacted = redact(content) if isinstance(content, str) else None

        earlier = stored.get(event_id) or pending.get(event_id)
        if earlier is not None:
            previous = earlier if isinstance(earlier, Interaction) else _as_stored(*earlier)
            differing = differences(previous, values, redacted, vault)
            if differing:
                outcomes.append(_rejected(index, event_id, conflict_message(event_id, differing)))
            else:
                outcomes.append(EventOutcome(index, event_id, "duplicate"))
            continue
        refusal = refusal_for(participant, values["occurred_at"])
        if not refusal and values["occurred_at"] > now + CLOCK_SKEW:
            refusal = "occurred_at is in the future"
        if refusal:
            outcomes.append(_rejected(index, event_id, refusal))
            continue
        pending[event_id] = (values, redacted)
        if consents.get(participant.id):
            keep_text.add(event_id)
        outcomes.append(EventOutcome(index, event_id, "accepted"))

    rows = [
        {**values, "content_encrypted": _encrypt(vault, text) if event_id in keep_text else None}
        for event_id, (values, text) in pending.items()
    ]
    inserted = insert_turns(session, rows)
    if len(inserted) < len(rows):
        outcomes = _settle_races(session, study_id, outcomes, pending, inserted, vault)
    return outcomes


def _participants(
    session: Session, study_id: int, codes: set[str]
) -> dict[str, tuple[Participant, int | None]]:
    rows = session.exec(
        select(Participant, Allocation.arm_id)
        .join(Allocation, col(Allocation.participant_id) == Participant.id, isouter=True)
        .where(Participant.study_id == study_id, col(Participant.code).in_(codes))
    ).all()
    return {participant.code: (participant, arm_id) for participant, arm_id in rows}


def _content_consents(session: Session, participants: list[Participant]) -> dict[int, bool]:
    """Whether each participant's active consent (as `consent.current_consent` defines it:
    the newest neither superseded nor withdrawn) allows storing chat text."""
    consents = session.exec(
        select(Consent)
        .where(
            col(Consent.participant_id).in_([person.id for person in participants]),
            col(Consent.superseded_at).is_(None),
            col(Consent.withdrawn_at).is_(None),
        )
        .order_by(col(Consent.signed_at), col(Consent.id))
    ).all()
    allowed = {consent.participant_id: consent for consent in consents}  # newest wins
    return {
        pid: bool(consent.options.get(CONTENT_CONSENT_ITEM, False))
        for pid, consent in allowed.items()
    }


def _stored(session: Session, study_id: int, event_ids: list[str]) -> dict[str, Interaction]:
    rows = session.exec(
        select(Interaction).where(
            Interaction.study_id == study_id, col(Interaction.event_id).in_(set(event_ids))
        )
    ).all()
    return {row.event_id: row for row in rows}


_OPTIONAL = {
    "content": None,
    "latency_ms": None,
    "prompt_tokens": None,
    "completion_tokens": None,
    "model": "",
    "prompt_version": "",
}


def _encrypt(vault: PiiVault, text: str | None) -> bytes | None:
    return None if text is None else vault.encrypt(text)


def _as_stored(values: dict, redacted: str | None) -> dict:
    return {**values, "content": redacted}


def _rejected(index: int, event_id: str, reason: str) -> EventOutcome:
    return EventOutcome(index, event_id, "rejected", reason)


def _settle_races(session, study_id, outcomes, pending, inserted, vault) -> list[EventOutcome]:
    """Events another writer stored between our read and our insert: duplicates if they agree
    with ours, rejected as conflicts if not."""
    lost = [event_id for event_id in pending if event_id not in inserted]
    winners = _stored(session, study_id, lost)
    settled = []
    for outcome in outcomes:
        if outcome.status == "accepted" and outcome.event_id in winners:
            values, redacted = pending[outcome.event_id]
            differing = differences(winners[outcome.event_id], values, redacted, vault)
            if differing:
                outcome = _rejected(
                    outcome.index, outcome.event_id, conflict_message(outcome.event_id, differing)
                )
            else:
                outcome = EventOutcome(outcome.index, outcome.event_id, "duplicate")
        settled.append(outcome)
    return settled
