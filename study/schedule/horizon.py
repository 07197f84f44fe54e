"""The rolling horizon: a tick task that keeps every enrolled participant's schedule written
up to `horizon` ahead, a batch of participants per tick.

Why: daily prompts for six months at 100,000 participants would be some 50 million future
occasions (and their messages) written at enrollment. Instead the tables hold what happened and
the next two weeks, and this task writes each new stretch as it comes within reach.

Each call examines up to `batch_size` enrolled participants after `after_id` (the task keeps
the cursor and wraps around), and for each:

* if an occasion still to come was planned under an older protocol version than the study's
  version in force, the amendment is applied: `replan` (audited per participant);
* otherwise, if what is written reaches less than half the horizon ahead, the plan for
  `now .. now + horizon` is computed and whatever is due after the last written occasion is
  written (checked again under the participant's lock, so two schedulers running this at once
  never write anything twice). One `schedule.extend` audit event counts a call's writes.

The cost of a call is bounded by the batch, whatever the size of the study; a full round of
100,000 participants at 1,000 a tick takes 100 ticks (25 minutes at the default 15 s), far
inside the week of lead that half a 14-day horizon leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from study import audit
from study.db import unit_of_work
from study.models import Consent, Occasion, Participant, Study
from study.protocol import Protocol
from study.protocol.registry import ProtocolCache, current_version, protocol_cache
from study.protocol.schema import EmaEntry

from .materialise import (
    DEFAULT_HORIZON,
    EMA_CONSENT_ITEM,
    SYSTEM_ACTOR,
    ScheduleError,
    lock_participant,
    plan_for,
    replan,
    schedule_seed,
    write_missing,
)

DEFAULT_BATCH = 1000
TASK_NAME = "schedule.extend_horizon"


@dataclass
class ExtendOutcome:
    """What one call did, and where the next one should start (`next_after_id`, 0 to wrap)."""

    checked: int = 0
    extended: int = 0
    replanned: int = 0
    occasions: int = 0
    messages: int = 0
    next_after_id: int = 0


@dataclass
class StudyPlan:
    """A study's protocol version in force and its schedule seed."""

    version_id: int
    protocol: Protocol
    seed: str

    @property
    def opt_in_items(self) -> set[str]:
        keys = {
            key
            for key, entry in self.protocol.model.schedule.items()
            if isinstance(entry, EmaEntry) and entry.opt_in
        }
        return keys | {EMA_CONSENT_ITEM} if keys else set()


def extend_horizon(
    session: Session,
    now: datetime,
    *,
    secret_key: str = "",
    horizon: timedelta = DEFAULT_HORIZON,
    batch_size: int = DEFAULT_BATCH,
    after_id: int = 0,
    protocols: ProtocolCache | None = None,
    actor: str = SYSTEM_ACTOR,
) -> ExtendOutcome:
    """Top up (or, after an amendment, re-plan) one batch of enrolled participants' schedules.

    Runs in the caller's transaction; idempotent. `secret_key` must be the one enrollment used
    (`Settings.secret_key`), so that EMA times continue the same seeded sequence.
    """
    last_due = (
        select(func.max(Occasion.due_at))
        .where(Occasion.participant_id == Participant.id)
        .correlate(Participant)
        .scalar_subquery()
    )
    batch = session.exec(
        select(Participant, last_due)
        .where(Participant.status == "enrolled", Participant.id > after_id)
        .order_by(col(Participant.id))
        .limit(batch_size)
    ).all()
    outcome = ExtendOutcome(
        checked=len(batch), next_after_id=batch[-1][0].id if len(batch) == batch_size else 0
    )
    if not batch:
        return outcome
    plans = _study_plans(
        session, {p.study_id for p, _ in batch}, secret_key, protocol_cache(protocols)
    )
    versions = _future_versions(session, [p.id for p, _ in batch], now)
    amended, to_top_up = [], []
    for participant, written_until in batch:
        plan = plans.get(participant.study_id)
        if plan is None:
            continue
        if versions.get(participant.id, set()) - {plan.version_id}:
            amended.append(participant)
        elif written_until is None or written_until < now + horizon / 2:
            to_top_up.append((participant, written_until))

    opted_in = _opted_in(session, [p for p, _ in to_top_up], plans)
    writes = []
    for participant, written_until in to_top_up:
        plan = plans[participant.study_id]
        planned = plan_for(
            participant,
            plan.protocol,
            seed=plan.seed,
            since=now,
            until=now + horizon,
            ema_opt_in=participant.id in opted_in,
        )
        new = [o for o in planned if written_until is None or o.due_at > written_until]
        if new:
            writes.append((participant, plan, new))

    # Every participant lock is taken, in id order, before the first audit event: audit events
    # serialise on the chain's lock, and waiting for it while still collecting participant
    # locks could deadlock with a withdrawal (participant row first, then the chain).
    for participant_id in sorted({p.id for p, _, _ in writes} | {p.id for p in amended}):
        lock_participant(session, participant_id)

    for participant, plan, new in writes:
        session.refresh(participant)
        if participant.status != "enrolled":
            continue  # withdrew since the batch was read
        written = write_missing(session, participant, new, plan.version_id, now=now)
        if written.occasions:
            outcome.extended += 1
            outcome.occasions += len(written.occasions)
            outcome.messages += written.messages
    if outcome.extended:
        audit.record(
            session,
            actor,
            "schedule.extend",
            entity_type="schedule",
            details={
                "participants": outcome.extended,
                "occasions": outcome.occasions,
                "messages": outcome.messages,
                "through": (now + horizon).isoformat(),
            },
            at=now,
        )

    for participant in amended:
        plan = plans[participant.study_id]
        try:
            result = replan(
                session,
                participant,
                plan.protocol,
                plan.version_id,
                now=now,
                seed=plan.seed,
                horizon=horizon,
                actor=actor,
                reason="amendment",
            )
        except ScheduleError:
            continue  # withdrew since the batch was read
        outcome.replanned += 1
        outcome.occasions += len(result.occasions)
        outcome.messages += result.messages
    return outcome


def _study_plans(
    session: Session, study_ids: set[int], secret_key: str, protocols: ProtocolCache
) -> dict[int, StudyPlan]:
    plans = {}
    for study in session.exec(select(Study).where(col(Study.id).in_(study_ids))):
        version = current_version(session, study.id)
        if version is not None:
            plans[study.id] = StudyPlan(
                version.id, protocols.load(version), schedule_seed(secret_key, study.slug)
            )
    return plans


def _future_versions(session: Session, ids: list[int], now: datetime) -> dict[int, set[int]]:
    """Per participant, the protocol versions of their occasions still to come and untouched."""
    found: dict[int, set[int]] = {}
    rows = session.exec(
        select(Occasion.participant_id, Occasion.protocol_version_id)
        .where(
            col(Occasion.participant_id).in_(ids),
            Occasion.status == "scheduled",
            Occasion.due_at > now,
        )
        .distinct()
    )
    for participant_id, version_id in rows:
        found.setdefault(participant_id, set()).add(version_id)
    return found


def _opted_in(
    session: Session, participants: list[Participant], plans: dict[int, StudyPlan]
) -> set[int]:
    """Ids of those whose consent in force opts in to their study's opt-in EMA."""
    asking = {p.id: plans[p.study_id].opt_in_items for p in participants}
    asking = {pid: items for pid, items in asking.items() if items}
    if not asking:
        return set()
    rows = session.exec(
        select(Consent.participant_id, Consent.options).where(
            col(Consent.participant_id).in_(list(asking)),
            col(Consent.superseded_at).is_(None),
            col(Consent.withdrawn_at).is_(None),
        )
    )
    return {
        pid
        for pid, options in rows
        if any((options or {}).get(item) is True for item in asking[pid])
    }


class HorizonTask:
    """The tick task's state: the batch cursor and parsed protocols, kept between ticks."""

    def __init__(
        self,
        secret_key: str,
        *,
        horizon: timedelta = DEFAULT_HORIZON,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.secret_key = secret_key
        self.horizon = horizon
        self.batch_size = batch_size
        self.after_id = 0

    def __call__(self, engine: Engine, now: datetime) -> ExtendOutcome:
        with unit_of_work(engine) as session:
            outcome = extend_horizon(
                session,
                now,
                secret_key=self.secret_key,
                horizon=self.horizon,
                batch_size=self.batch_size,
                after_id=self.after_id,
            )
        self.after_id = outcome.next_after_id
        return outcome


def horizon_task(settings, **options):
    """The `TickTask` registered in `study.scheduler.standard_tasks`."""
    from study.scheduler import TickTask

    return TickTask(TASK_NAME, HorizonTask(settings.secret_key, **options))
