"""Two enrollments at once never share a place in the sequence, and blocks stay balanced.

Runs on SQLite (one writer, taken before the ledger is read) and PostgreSQL (advisory lock).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

from sqlmodel import Session, select

from study.models import Allocation, Arm
from study.randomization import allocate, verify_allocations
from study.randomization.design import AllocationDesign
from study.randomization.sequence import Randomiser

from .conftest import SEED

STRATA = {"wellbeing": "low", "age_band": "under_35"}
PER_THREAD = 15


def test_concurrent_allocations_get_distinct_positions_and_balanced_blocks(
    engine, example, register, enrol
):
    with Session(engine, expire_on_commit=False) as session:
        study = register(session, example)
        people = enrol(session, study, 2 * PER_THREAD)
    halves = [people[:PER_THREAD], people[PER_THREAD:]]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def enrol_half(half):
        try:
            for person in half:
                # Both threads start each allocation together, so their transactions overlap.
                barrier.wait(timeout=30)
                with Session(engine, expire_on_commit=False) as session:
                    allocate(
                        session,
                        participant=session.get(type(person), person.id),
                        protocol=example,
                        strata=STRATA,
                        seed=SEED,
                        actor="test",
                    )
                    session.commit()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=enrol_half, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    with Session(engine) as session:
        rows = session.exec(
            select(Allocation.sequence_number, Arm.key)
            .join(Arm, Arm.id == Allocation.arm_id)
            .order_by(Allocation.sequence_number)
        ).all()
        assert [number for number, _ in rows] == list(range(1, 2 * PER_THREAD + 1))
        assert verify_allocations(session, protocol=example, seed=SEED).ok

    # Group the stratum's allocations into the seed's blocks: every complete one is balanced.
    blocks = Randomiser(AllocationDesign.from_protocol(example), SEED).blocks(
        "age_band=under_35|wellbeing=low"
    )
    grouped = defaultdict(list)
    for position, (_, arm) in enumerate(rows):
        grouped[blocks.block_at(position)].append(arm)
    complete = [arms for block, arms in grouped.items() if len(arms) == block.size]
    assert complete
    for arms in complete:
        counts = Counter(arms)
        assert set(counts) == {"instruct", "reflective", "control"}
        assert len(set(counts.values())) == 1
