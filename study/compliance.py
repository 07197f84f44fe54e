"""Compliance: what became of each occasion, how quickly, and the sweep that closes windows.

    records = compliance_records(session, study_id, now=now)    # one per occasion
    summary = compliance_summary(session, study_id, now=now)    # by arm, schedule key and wave
    sweep_missed(session, now)                                  # closed windows become `missed`

A record names the participant by pseudonymous code only (no contact details ever) and, for
researchers, the arm. Its `status` is the occasion's, refined by the outbox: an occasion that
was `sent` shows `delivered` once the provider confirmed delivery of any of its messages.

The missed sweep is the one place that closes windows (the dispatcher marks an occasion missed
only when nothing was ever sent for it). An occasion whose `closes_at` has passed and that is
neither `completed` nor `cancelled` becomes `missed`, partial ones included; `opened_at` and any
stored answers stay, so the record still says how far the participant got (`reached`), and the
sweep's audit event lists the occasions that were partial. Their pending messages expire.
See docs/scheduling.md, *Compliance*.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from study import audit
from study.config import Settings
from study.db import unit_of_work
from study.models import Allocation, Arm, Occasion, OutboundMessage, Participant, Response

SWEEP_ACTOR = "system:scheduler"
SWEEP_TASK_NAME = "compliance.sweep_missed"
DEFAULT_SWEEP_BATCH = 500
# Occasions whose window may still be answered; once closed, the sweep settles them as missed.
OPEN_STATUSES = ("scheduled", "sent", "opened", "partial")
DELIVERY_FAILURES = ("undelivered", "failed")
# How far an occasion got, in order; `reached` is the furthest.
STAGES = ("scheduled", "sent", "delivered", "opened", "partial", "completed")


@dataclass(frozen=True)
class MessageOutcome:
    """One outbox message of an occasion, as compliance sees it (never its text or recipient)."""

    channel: str
    purpose: str
    status: str
    sent_at: datetime | None


@dataclass(frozen=True)
class ComplianceRecord:
    """What became of one occasion. Latencies are in seconds, None where they do not apply.

    `status`: scheduled, sent, delivered, opened, partial, completed, missed or cancelled.
    `reached`: the furthest stage the occasion got to (for a missed one: whether it had been
    sent, delivered, opened or partly answered before its window closed).
    `late`: completed only after a reminder had gone out, or after the window closed.
    """

    occasion_id: int
    participant: str
    arm: str | None
    schedule_key: str
    wave: int
    kind: str
    due_at: datetime
    closes_at: datetime
    status: str
    reached: str
    channels: tuple[str, ...]
    messages: tuple[MessageOutcome, ...]
    sent_at: datetime | None
    opened_at: datetime | None
    completed_at: datetime | None
    due_to_sent: float | None
    sent_to_opened: float | None
    opened_to_completed: float | None
    due_to_completed: float | None
    late: bool

    @property
    def delivery(self) -> dict[str, str]:
        """Per channel, the best outcome of its messages: delivered, sent, undelivered, failed,
        or the outbox status of a message that never went (pending, expired, cancelled)."""
        rank = ("delivered", "sent", "sending", "undelivered", "failed", "pending", "expired")
        best: dict[str, str] = {}
        for message in self.messages:
            current = best.get(message.channel)
            if current is None or _rank(message.status, rank) < _rank(current, rank):
                best[message.channel] = message.status
        return best

    @property
    def delivery_failures(self) -> dict[str, int]:
        """Messages the provider could not deliver (undelivered or failed), per channel."""
        counts: dict[str, int] = defaultdict(int)
        for message in self.messages:
            if message.status in DELIVERY_FAILURES:
                counts[message.channel] += 1
        return dict(counts)

    def is_due(self, now: datetime) -> bool:
        """Counts in a response rate: completed, or its window closed (not cancelled)."""
        if self.status == "cancelled":
            return False
        return self.status == "completed" or self.closes_at <= now


def _rank(status: str, order: Sequence[str]) -> int:
    return order.index(status) if status in order else len(order)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def compliance_records(session: Session, study_id: int, *, now: datetime) -> list[ComplianceRecord]:
    """Every occasion of the study's participants, ordered by due time, code and schedule key.

    `now` decides nothing about the stored status (the sweep does that); it is accepted so
    that callers state the instant the report describes, and an occasion still `sent` whose
    window has closed before the sweep ran is already reported as `missed`.
    """
    rows = session.exec(
        select(Occasion, Participant.code, Arm.key)
        .join(Participant, col(Participant.id) == Occasion.participant_id)
        .join(Allocation, col(Allocation.participant_id) == Participant.id, isouter=True)
        .join(Arm, col(Arm.id) == Allocation.arm_id, isouter=True)
        .where(Participant.study_id == study_id)
        .order_by(col(Occasion.due_at), col(Participant.code), col(Occasion.schedule_key))
    ).all()
    messages = _messages_by_occasion(session, study_id)
    answered = _answered_occasions(session, study_id)
    return [
        _record(occasion, code, arm, messages.get(occasion.id, ()), occasion.id in answered, now)
        for occasion, code, arm in rows
    ]


def _messages_by_occasion(session: Session, study_id: int) -> dict[int, list[MessageOutcome]]:
    found: dict[int, list[MessageOutcome]] = defaultdict(list)
    statement = (
        select(
            OutboundMessage.occasion_id,
            OutboundMessage.channel,
            OutboundMessage.purpose,
            OutboundMessage.status,
            OutboundMessage.sent_at,
        )
        .join(Participant, col(Participant.id) == OutboundMessage.participant_id)
        .where(Participant.study_id == study_id, col(OutboundMessage.occasion_id).is_not(None))
        .order_by(col(OutboundMessage.id))
    )
    for occasion_id, channel, purpose, status, sent_at in session.exec(statement):
        found[occasion_id].append(MessageOutcome(channel, purpose, status, sent_at))
    return found


def _answered_occasions(session: Session, study_id: int) -> set[int]:
    """Occasions with at least one stored response (partial or submitted)."""
    statement = (
        select(Response.occasion_id)
        .join(Participant, col(Participant.id) == Response.participant_id)
        .where(Participant.study_id == study_id)
        .distinct()
    )
    return set(session.exec(statement))


def _record(
    occasion: Occasion,
    code: str,
    arm: str | None,
    messages: Sequence[MessageOutcome],
    answered: bool,
    now: datetime,
) -> ComplianceRecord:
    sent = [m.sent_at for m in messages if m.sent_at is not None]
    sent_at = min(sent) if sent else None
    reminders = [m.sent_at for m in messages if m.purpose == "reminder" and m.sent_at is not None]
    delivered = any(m.status == "delivered" for m in messages)

    reached = "scheduled"
    for stage, happened in (
        ("sent", sent_at is not None),
        ("delivered", delivered),
        ("opened", occasion.opened_at is not None),
        ("partial", answered or occasion.status == "partial"),
        ("completed", occasion.status == "completed"),
    ):
        if happened:
            reached = stage

    status = occasion.status
    if status == "scheduled" and sent_at is not None:
        status = "sent"  # recorded on the message, not yet on the occasion
    if status == "sent" and delivered:
        status = "delivered"
    if status in (*OPEN_STATUSES, "delivered") and occasion.closes_at <= now:
        status = "missed"  # the window has closed; the sweep will store it

    completed_at = occasion.completed_at if occasion.status == "completed" else None
    late = completed_at is not None and (
        completed_at > occasion.closes_at or any(at < completed_at for at in reminders)
    )
    return ComplianceRecord(
        occasion_id=occasion.id,
        participant=code,
        arm=arm,
        schedule_key=occasion.schedule_key,
        wave=occasion.wave,
        kind=occasion.kind,
        due_at=occasion.due_at,
        closes_at=occasion.closes_at,
        status=status,
        reached=reached,
        channels=tuple(sorted({m.channel for m in messages})),
        messages=tuple(messages),
        sent_at=sent_at,
        opened_at=occasion.opened_at,
        completed_at=completed_at,
        due_to_sent=_seconds(occasion.due_at, sent_at),
        sent_to_opened=_seconds(sent_at, occasion.opened_at),
        opened_to_completed=_seconds(occasion.opened_at, completed_at),
        due_to_completed=_seconds(occasion.due_at, completed_at),
        late=late,
    )


# --- summary --------------------------------------------------------------------------------------


@dataclass
class ComplianceGroup:
    """Counts for one arm and occasion (schedule key and wave), or a total over several.

    `due`: occasions that count toward the response rate (completed, or closed and not
    cancelled). `response_rate` = completed / due (None when nothing is due yet).
    """

    arm: str | None
    schedule_key: str | None
    wave: int | None
    occasions: int = 0
    due: int = 0
    completed: int = 0
    late: int = 0
    missed: int = 0
    missed_partial: int = 0
    cancelled: int = 0
    open: int = 0
    delivery_failures: dict[str, int] = field(default_factory=dict)

    @property
    def response_rate(self) -> float | None:
        return self.completed / self.due if self.due else None

    def add(self, record: ComplianceRecord, now: datetime) -> None:
        self.occasions += 1
        self.due += record.is_due(now)
        self.completed += record.status == "completed"
        self.late += record.late
        self.missed += record.status == "missed"
        self.missed_partial += record.status == "missed" and record.reached == "partial"
        self.cancelled += record.status == "cancelled"
        self.open += record.status != "cancelled" and not record.is_due(now)
        for channel, count in record.delivery_failures.items():
            self.delivery_failures[channel] = self.delivery_failures.get(channel, 0) + count


@dataclass(frozen=True)
class ComplianceSummary:
    """Groups per (arm, schedule key, wave), totals per arm, and the study's total."""

    now: datetime
    groups: tuple[ComplianceGroup, ...]
    arms: tuple[ComplianceGroup, ...]
    total: ComplianceGroup


def summarise(records: Iterable[ComplianceRecord], *, now: datetime) -> ComplianceSummary:
    """Aggregate records (from `compliance_records`) by arm and wave, as of `now`."""
    groups: dict[tuple, ComplianceGroup] = {}
    arms: dict[str | None, ComplianceGroup] = {}
    total = ComplianceGroup(None, None, None)
    for record in records:
        key = (record.arm, record.schedule_key, record.wave)
        if key not in groups:
            groups[key] = ComplianceGroup(*key)
        if record.arm not in arms:
            arms[record.arm] = ComplianceGroup(record.arm, None, None)
        for group in (groups[key], arms[record.arm], total):
            group.add(record, now)

    def order(key):
        arm, schedule_key, wave = key
        return (arm or "", schedule_key or "", wave if wave is not None else -1)

    return ComplianceSummary(
        now=now,
        groups=tuple(groups[key] for key in sorted(groups, key=order)),
        arms=tuple(arms[arm] for arm in sorted(arms, key=lambda arm: arm or "")),
        total=total,
    )


def compliance_summary(session: Session, study_id: int, *, now: datetime) -> ComplianceSummary:
    """The study's response rates, lateness, misses and delivery failures by arm and wave."""
    return summarise(compliance_records(session, study_id, now=now), now=now)


# --- the missed sweep -----------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    """What one `sweep_missed` call did."""

    missed: int = 0
    partial: int = 0
    expired_messages: int = 0
    more: bool = False


def sweep_missed(
    session: Session,
    now: datetime,
    *,
    batch_size: int = DEFAULT_SWEEP_BATCH,
    actor: str = SWEEP_ACTOR,
) -> SweepOutcome:
    """Mark up to `batch_size` occasions whose window closed by `now` as `missed`; audited.

    In the caller's transaction. Idempotent: a missed occasion is not open any more, so a
    second call finds nothing. `more` says a full batch was taken (call again).

    Lock order matches the dispatcher's (message row, then occasion): pending messages are
    expired first, then the occasions are updated under a compare-and-set guard, so a
    submission that completed an occasion meanwhile is never overwritten, and two schedulers
    sweeping at once mark (and audit) each occasion once: the second's guarded update finds
    the rows already missed.
    """
    closed = (col(Occasion.status).in_(OPEN_STATUSES)) & (col(Occasion.closes_at) <= now)
    candidates = session.exec(
        select(Occasion.id, Occasion.status)
        .where(closed)
        .order_by(col(Occasion.closes_at), col(Occasion.id))
        .limit(batch_size)
    ).all()
    outcome = SweepOutcome(more=len(candidates) == batch_size)
    if not candidates:
        return outcome
    ids = [occasion_id for occasion_id, _ in candidates]
    outcome.expired_messages = (
        session.execute(
            update(OutboundMessage)
            .where(col(OutboundMessage.occasion_id).in_(ids), OutboundMessage.status == "pending")
            .values(status="expired", last_error="expired: window closed", status_updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    answered = set(
        session.exec(select(Response.occasion_id).where(col(Response.occasion_id).in_(ids)))
    )
    partial_candidates = {
        occasion_id
        for occasion_id, status in candidates
        if status == "partial" or occasion_id in answered
    }
    swept = list(
        session.execute(
            update(Occasion)
            .where(col(Occasion.id).in_(ids), closed)
            .values(status="missed")
            .returning(Occasion.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    outcome.missed = len(swept)
    partial = sorted(partial_candidates.intersection(swept))
    outcome.partial = len(partial)
    if swept:
        audit.record(
            session,
            actor,
            "schedule.missed",
            entity_type="schedule",
            details={
                "occasions": outcome.missed,
                "partial_occasion_ids": partial,
                "expired_messages": outcome.expired_messages,
                "closed_by": now.isoformat(),
            },
            at=now,
        )
    return outcome


def sweep_task(settings: Settings, *, batch_size: int = DEFAULT_SWEEP_BATCH, max_batches: int = 20):
    """The `compliance.sweep_missed` tick task: batches of its own transaction each, at most
    `max_batches` a tick so that a backlog after downtime never makes one tick unbounded."""
    from study.scheduler import TickTask

    def run(engine: Engine, now: datetime) -> None:
        for _ in range(max_batches):
            with unit_of_work(engine) as session:
                outcome = sweep_missed(session, now, batch_size=batch_size)
            if not outcome.more:
                break

    return TickTask(SWEEP_TASK_NAME, run)
