"""Allocating a participant: the one place that writes `Allocation` rows.

`allocate` runs inside the caller's transaction. It serialises allocations per study (a
PostgreSQL advisory lock; SQLite's single writer, taken up front), rebuilds the ledger of earlier
randomised allocations from the `Allocation` table, applies the protocol's scheme, writes the
allocation and the participant's levels, and audits `allocation.create`. The seed is used and
forgotten: it is never stored, logged or audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from .. import audit
from ..models import Allocation, Arm, Participant, Study
from ..protocol import Protocol
from .design import AllocationDesign, AllocationError, parse_stratum_key, stratum_key
from .sequence import Ledger, Randomiser

PREFERENCE = "preference"
ALLOCATABLE_STATUSES = ("consented", "enrolled")

# Names this module's PostgreSQL advisory locks: pg_advisory_xact_lock(_LOCK_CLASS, study id).
_LOCK_CLASS = 0x416C6C6F  # "Allo"


def allocate(
    session: Session,
    *,
    participant: Participant,
    protocol: Protocol,
    strata: Mapping[str, str],
    seed: str,
    actor: str,
    preference: str | None = None,
    now: datetime | None = None,
) -> Allocation:
    """Allocate `participant` to an arm of `protocol` and audit it; returns the new row.

    `strata` are the participant's levels (see `stratum_levels`). With a preference design,
    `preference` is their answer to its question: an arm key allocates them to that arm
    (`chosen_by_participant`, scheme `preference`, numbered in a series of its own, outside the
    randomised sequence); the `randomise_value` randomises them as usual. Raises
    `AllocationError` when the allocation cannot be made as asked.
    """
    if not seed:
        raise AllocationError("no allocation seed given (see allocation_seed)")
    design = AllocationDesign.from_protocol(protocol)
    levels = design.checked_levels(strata)
    stratum = stratum_key(levels)
    chosen = _chosen_arm(design, preference)

    study = session.exec(select(Study).where(Study.slug == design.slug)).first()
    if study is None:
        raise AllocationError(
            f"study '{design.slug}' is not registered; load its protocol first "
            "(flourish protocol load)"
        )
    if participant.id is None:
        session.add(participant)
        session.flush()
    if participant.study_id != study.id:
        raise AllocationError(f"participant {participant.code} is not in study '{design.slug}'")
    if participant.status not in ALLOCATABLE_STATUSES:
        raise AllocationError(
            f"participant {participant.code} is {participant.status}; only consented or "
            "enrolled participants are allocated"
        )

    _serialise(session, study)
    existing = session.exec(
        select(Allocation).where(Allocation.participant_id == participant.id)
    ).first()
    if existing is not None:
        raise AllocationError(f"participant {participant.code} has already been allocated")
    arms = _active_arms(session, study, design)

    if chosen is not None:
        arm_key, scheme, number = chosen, PREFERENCE, _next_preference_number(session, study)
    else:
        ledger = load_ledger(session, study)
        assignment = Randomiser(design, seed).assign(levels, ledger)
        arm_key, scheme, number = assignment.arm, assignment.scheme, assignment.sequence_number

    allocation = Allocation(
        participant_id=participant.id,
        arm_id=arms[arm_key].id,
        stratum=stratum,
        scheme=scheme,
        sequence_number=number,
        chosen_by_participant=chosen is not None,
    )
    if now is not None:
        allocation.allocated_at = now
    participant.strata = dict(levels)
    session.add(allocation)
    session.add(participant)
    session.flush()
    _check_unique_position(session, study, allocation)

    # The arm and the levels (health information such as low wellbeing) go into the hashed
    # state only: audit exports leave the unblinded team, and the hash still proves the row.
    where = {"study": design.slug, "participant": participant.code, "scheme": scheme}
    audit.record(
        session,
        actor,
        "allocation.create",
        entity_type="allocation",
        entity_id=allocation.id,
        before=None,
        after={
            **where,
            "arm": arm_key,
            "stratum": stratum,
            "strata": dict(levels),
            "sequence_number": number,
            "chosen_by_participant": allocation.chosen_by_participant,
        },
        details={**where, "sequence_number": number},
        at=now,
    )
    return allocation


def _chosen_arm(design: AllocationDesign, preference: str | None) -> str | None:
    """The arm a participant chose in a preference design, or None to randomise them."""
    spec = design.preference
    if spec is None:
        if preference is not None:
            raise AllocationError(
                "this protocol has no preference design (allocation.preference_arm), "
                "so no preference can be given"
            )
        return None
    if preference is None or preference == "":
        raise AllocationError(
            f"the preference question '{spec.question}' was not answered; answer an arm "
            f"({', '.join(design.preference_arms)}) or '{spec.randomise_value}'"
        )
    if preference == spec.randomise_value:
        return None
    if preference not in design.preference_arms:
        raise AllocationError(
            f"'{preference}' is not a preference arm ({', '.join(design.preference_arms)}) "
            f"nor '{spec.randomise_value}'"
        )
    return preference


def _serialise(session: Session, study: Study) -> None:
    """Make this transaction the only one allocating in `study` until it ends.

    PostgreSQL: the audit chain's lock first, then the study's allocation lock, always in that
    order, so a transaction that audited something before allocating cannot deadlock with one
    that allocates first. SQLite: a no-op write takes the database's single write lock now,
    before the ledger is read, so no other writer can slip in between reading and writing.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": audit._CHAIN_LOCK})
        session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :study)"),
            {"cls": _LOCK_CLASS, "study": study.id},
        )
    else:
        session.execute(text("UPDATE study SET status = status WHERE id = :id"), {"id": study.id})


def _active_arms(session: Session, study: Study, design: AllocationDesign) -> dict[str, Arm]:
    """The study's arms in the design, refusing if any is retired or unknown to the database."""
    rows = {arm.key: arm for arm in session.exec(select(Arm).where(Arm.study_id == study.id))}
    for key in design.arms:
        arm = rows.get(key)
        if arm is None:
            raise AllocationError(
                f"arm '{key}' is not registered for '{design.slug}'; load the protocol version "
                "you are allocating with (flourish protocol load)"
            )
        if arm.retired_in_version is not None:
            raise AllocationError(
                f"arm '{key}' was retired in protocol version {arm.retired_in_version}; "
                "allocate with the protocol version in force"
            )
    return {key: rows[key] for key in design.arms}


def load_ledger(session: Session, study: Study) -> Ledger:
    """The ledger of the study's randomised allocations, from the `Allocation` table."""
    ledger = Ledger()
    rows = session.exec(
        select(Allocation.stratum, Allocation.scheme, Allocation.sequence_number, Arm.key)
        .join(Arm, col(Arm.id) == col(Allocation.arm_id))
        .where(Arm.study_id == study.id, Allocation.scheme != PREFERENCE)
        .order_by(col(Allocation.sequence_number))
    )
    for stratum, scheme, number, arm in rows:
        ledger.add(
            stratum=stratum,
            levels=parse_stratum_key(stratum),
            arm=arm,
            scheme=scheme,
            sequence_number=number,
        )
    return ledger


def _series(study: Study, preference: bool):
    condition = Allocation.scheme == PREFERENCE if preference else Allocation.scheme != PREFERENCE
    return (
        select(Allocation)
        .join(Arm, col(Arm.id) == col(Allocation.arm_id))
        .where(Arm.study_id == study.id, condition)
    )


def _next_preference_number(session: Session, study: Study) -> int:
    last = session.exec(
        select(func.max(Allocation.sequence_number))
        .join(Arm, col(Arm.id) == col(Allocation.arm_id))
        .where(Arm.study_id == study.id, Allocation.scheme == PREFERENCE)
    ).one()
    return (last or 0) + 1


def _check_unique_position(session: Session, study: Study, allocation: Allocation) -> None:
    """Refuse (roll back) if another allocation holds the same position in the same series.

    The lock makes this impossible; the check turns a broken lock into an error rather than
    two participants silently sharing a place in the sequence.
    """
    series = _series(study, allocation.scheme == PREFERENCE).where(
        Allocation.sequence_number == allocation.sequence_number
    )
    taken = session.exec(series).all()
    if len(taken) > 1:
        raise AllocationError(
            f"sequence position {allocation.sequence_number} was taken concurrently; try again"
        )


# --- reproducibility audit ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """A recorded randomised allocation that the seed does not reproduce."""

    participant: str
    sequence_number: int
    stratum: str
    recorded: str
    expected: str


@dataclass
class Verification:
    """What `verify_allocations` found."""

    checked: int = 0
    preference: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_allocations(session: Session, *, protocol: Protocol, seed: str) -> Verification:
    """Re-derive every randomised allocation of the protocol's study from `seed`, in sequence
    order, and list those that differ. Each step continues from what was actually recorded, so
    one discrepancy does not cascade. Preference allocations are counted, not re-derived.

    The design used is `protocol`'s; allocations made under an earlier version with a different
    design show up as mismatches.
    """
    design = AllocationDesign.from_protocol(protocol)
    study = session.exec(select(Study).where(Study.slug == design.slug)).first()
    if study is None:
        raise AllocationError(f"study '{design.slug}' is not registered")
    result = Verification()
    result.preference = len(session.exec(_series(study, preference=True)).all())
    rows = session.exec(
        select(Allocation, Arm.key, Participant.code)
        .join(Arm, col(Arm.id) == col(Allocation.arm_id))
        .join(Participant, col(Participant.id) == col(Allocation.participant_id))
        .where(Arm.study_id == study.id, Allocation.scheme != PREFERENCE)
        .order_by(col(Allocation.sequence_number))
    ).all()
    randomiser = Randomiser(design, seed)
    ledger = Ledger()
    for allocation, arm, code in rows:
        levels = parse_stratum_key(allocation.stratum)
        expected = randomiser.assign(levels, ledger)
        result.checked += 1
        if (expected.arm, expected.scheme, expected.sequence_number) != (
            arm,
            allocation.scheme,
            allocation.sequence_number,
        ):
            result.mismatches.append(
                Mismatch(code, allocation.sequence_number, allocation.stratum, arm, expected.arm)
            )
        ledger.add(
            stratum=allocation.stratum,
            levels=levels,
            arm=arm,
            scheme=allocation.scheme,
            sequence_number=allocation.sequence_number,
        )
    return result
