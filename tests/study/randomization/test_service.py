"""Allocating participants in the database: stratified sequence, audit, preference arms,
retired arms, refusals and the reproducibility audit. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import col, select

from study import audit
from study.models import Allocation, Arm, AuditEvent, Participant
from study.randomization import AllocationError, allocate, verify_allocations
from study.randomization.design import AllocationDesign
from study.randomization.sequence import Randomiser
from study.randomization.simulation import simulate_sequence

from .conftest import SEED

LOW_YOUNG = {"wellbeing": "low", "age_band": "under_35"}
HIGH_OLD = {"wellbeing": "high", "age_band": "age_35_plus"}


def arm_key(session, allocation: Allocation) -> str:
    return session.get(Arm, allocation.arm_id).key


def allocate_all(session, protocol, people, strata, seed=SEED, **kwargs):
    made = []
    for person in people:
        made.append(
            allocate(
                session,
                participant=person,
                protocol=protocol,
                strata=strata,
                seed=seed,
                actor="test",
                **kwargs,
            )
        )
        session.commit()
    return made


def test_allocation_writes_the_row_and_the_participants_levels(session, example, register, enrol):
    study = register(session, example)
    [person] = enrol(session, study)
    allocation = allocate(
        session, participant=person, protocol=example, strata=LOW_YOUNG, seed=SEED, actor="test"
    )
    session.commit()
    stored = session.exec(select(Allocation)).one()
    assert stored.participant_id == person.id
    assert stored.stratum == "age_band=under_35|wellbeing=low"
    assert stored.scheme == "permuted_blocks"
    assert stored.sequence_number == 1
    assert stored.chosen_by_participant is False
    assert arm_key(session, stored) == arm_key(session, allocation)
    assert session.get(Participant, person.id).strata == LOW_YOUNG


def test_allocations_follow_the_stratum_sequence_the_seed_defines(
    session, example, register, enrol
):
    study = register(session, example)
    young = allocate_all(session, example, enrol(session, study, 12), LOW_YOUNG)
    old = allocate_all(session, example, enrol(session, study, 9), HIGH_OLD)
    randomiser = Randomiser(AllocationDesign.from_protocol(example), SEED)
    for strata, made in (
        ("age_band=under_35|wellbeing=low", young),
        (
            "age_band=age_35_plus|wellbeing=high",
            old,
        ),
    ):
        expected = [randomiser.blocks(strata).arm_at(i) for i in range(len(made))]
        assert [arm_key(session, a) for a in made] == expected
    # Sequence numbers run study-wide across strata.
    assert [a.sequence_number for a in young + old] == list(range(1, 22))
    assert verify_allocations(session, protocol=example, seed=SEED).ok


def test_the_same_seed_and_order_reproduce_the_allocations(engine, example, register, enrol):
    from sqlmodel import Session

    def run(seed):
        with Session(engine, expire_on_commit=False) as session:
            for table in (Allocation, Participant):
                for row in session.exec(select(table)):
                    session.delete(row)
            session.commit()
            study = register(session, example)
            made = allocate_all(session, example, enrol(session, study, 30), LOW_YOUNG, seed=seed)
            return [arm_key(session, a) for a in made]

    first = run(SEED)
    assert run(SEED) == first
    assert run("another seed entirely") != first


def test_minimisation_balances_factor_levels_in_the_database(
    session, minimisation, register, enrol
):
    study = register(session, minimisation)
    made = []
    for i, person in enumerate(enrol(session, study, 60)):
        strata = LOW_YOUNG if i % 3 else HIGH_OLD
        made += allocate_all(session, minimisation, [person], strata)
    assert {a.scheme for a in made} == {"minimisation"}
    counts = Counter(arm_key(session, a) for a in made)
    assert max(counts.values()) - min(counts.values()) <= 3
    assert verify_allocations(session, protocol=minimisation, seed=SEED).ok


def test_allocation_is_audited_without_the_seed(session, example, register, enrol):
    study = register(session, example)
    [person] = enrol(session, study)
    allocation = allocate(
        session, participant=person, protocol=example, strata=LOW_YOUNG, seed=SEED, actor="me"
    )
    session.commit()
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "allocation.create")).one()
    assert event.actor == "me"
    assert event.entity_type == "allocation" and event.entity_id == str(allocation.id)
    assert event.before_hash == ""
    assert event.after_hash == audit.state_hash(
        {
            "study": "assistant-flourishing-rct",
            "participant": person.code,
            "scheme": "permuted_blocks",
            "arm": arm_key(session, allocation),
            "stratum": "age_band=under_35|wellbeing=low",
            "strata": LOW_YOUNG,
            "sequence_number": 1,
            "chosen_by_participant": False,
        }
    )
    assert event.details == {
        "study": "assistant-flourishing-rct",
        "participant": person.code,
        "scheme": "permuted_blocks",
        "sequence_number": 1,
    }
    for fmt in ("jsonl", "csv"):
        assert SEED not in audit.export(session, fmt)
    assert not audit.verify_chain(audit.events(session))


def test_a_stated_preference_is_honoured_outside_the_randomised_sequence(
    session, preference_trial, register, enrol
):
    study = register(session, preference_trial)
    chooser, undecided, second_chooser = enrol(session, study, 3)
    [chosen] = allocate_all(
        session, preference_trial, [chooser], LOW_YOUNG, preference="reflective"
    )
    [randomised] = allocate_all(
        session, preference_trial, [undecided], LOW_YOUNG, preference="no_preference"
    )
    [chosen_again] = allocate_all(
        session, preference_trial, [second_chooser], LOW_YOUNG, preference="instruct"
    )
    assert (arm_key(session, chosen), chosen.scheme, chosen.chosen_by_participant) == (
        "reflective",
        "preference",
        True,
    )
    assert (chosen.sequence_number, chosen_again.sequence_number) == (1, 2)
    assert randomised.scheme == "permuted_blocks" and not randomised.chosen_by_participant
    # The randomised sequence starts at its first position as if no one had chosen.
    assert randomised.sequence_number == 1
    expected = Randomiser(AllocationDesign.from_protocol(preference_trial), SEED)
    assert arm_key(session, randomised) == expected.blocks(randomised.stratum).arm_at(0)
    result = verify_allocations(session, protocol=preference_trial, seed=SEED)
    assert (result.checked, result.preference, result.ok) == (1, 2, True)


@pytest.mark.parametrize(
    ("preference", "message"),
    [
        (None, "the preference question 'preferred_assistant' was not answered"),
        ("control", "'control' is not a preference arm"),
    ],
)
def test_a_preference_design_needs_a_valid_answer(
    session, preference_trial, register, enrol, preference, message
):
    study = register(session, preference_trial)
    [person] = enrol(session, study)
    with pytest.raises(AllocationError, match=message):
        allocate(
            session,
            participant=person,
            protocol=preference_trial,
            strata=LOW_YOUNG,
            seed=SEED,
            actor="test",
            preference=preference,
        )


def test_a_preference_without_a_preference_design_is_refused(session, example, register, enrol):
    study = register(session, example)
    [person] = enrol(session, study)
    with pytest.raises(AllocationError, match="no preference design"):
        allocate_all(session, example, [person], LOW_YOUNG, preference="reflective")


def test_a_retired_arm_is_never_allocated(session, example, without_control, register, enrol):
    register(session, example)
    study = register(session, without_control)
    people = enrol(session, study, 40)
    with pytest.raises(AllocationError, match="arm 'control' was retired in protocol version 2"):
        allocate_all(session, example, people[:1], LOW_YOUNG)
    session.rollback()
    made = allocate_all(session, without_control, people, LOW_YOUNG)
    assert Counter(arm_key(session, a) for a in made) == {"instruct": 20, "reflective": 20}


def test_a_participant_is_allocated_once(session, example, register, enrol):
    study = register(session, example)
    [person] = enrol(session, study)
    allocate_all(session, example, [person], LOW_YOUNG)
    with pytest.raises(AllocationError, match="already been allocated"):
        allocate_all(session, example, [person], LOW_YOUNG)


@pytest.mark.parametrize("status", ["screening", "ineligible", "withdrawn", "completed"])
def test_only_consented_or_enrolled_participants_are_allocated(
    session, example, register, enrol, status
):
    study = register(session, example)
    [person] = enrol(session, study, status=status)
    with pytest.raises(AllocationError, match=f"is {status}; only consented or enrolled"):
        allocate_all(session, example, [person], LOW_YOUNG)
    assert session.exec(select(Allocation)).all() == []


def test_bad_strata_and_an_unregistered_study_are_refused(session, example, register, enrol):
    with pytest.raises(AllocationError, match="is not registered"):
        allocate(
            session,
            participant=Participant(study_id=1, code="P-X", status="consented"),
            protocol=example,
            strata=LOW_YOUNG,
            seed=SEED,
            actor="test",
        )
    session.rollback()
    study = register(session, example)
    [person] = enrol(session, study)
    with pytest.raises(AllocationError, match="no level given for stratification factor"):
        allocate_all(session, example, [person], {"wellbeing": "low"})
    with pytest.raises(AllocationError, match="no allocation seed"):
        allocate_all(session, example, [person], LOW_YOUNG, seed="")


def test_verification_finds_an_allocation_the_seed_does_not_give(session, example, register, enrol):
    study = register(session, example)
    made = allocate_all(session, example, enrol(session, study, 9), LOW_YOUNG)
    tampered = made[4]
    recorded = arm_key(session, tampered)
    other = session.exec(
        select(Arm).where(Arm.study_id == study.id, Arm.key != recorded).order_by(col(Arm.key))
    ).first()
    tampered.arm_id = other.id
    session.add(tampered)
    session.commit()
    result = verify_allocations(session, protocol=example, seed=SEED)
    assert result.checked == 9
    assert [(m.sequence_number, m.recorded, m.expected) for m in result.mismatches] == [
        (5, other.key, recorded)
    ]
    assert not verify_allocations(session, protocol=example, seed="wrong seed").ok


def test_a_simulation_never_reproduces_the_real_sequence(
    session, unstratified_blocks, register, enrol
):
    study = register(session, unstratified_blocks)
    made = allocate_all(session, unstratified_blocks, enrol(session, study, 60), {})
    real = [arm_key(session, a) for a in made]
    simulated = [a.arm for a in simulate_sequence(unstratified_blocks, 60, SEED)]
    assert real != simulated


def test_the_package_offers_no_way_to_ask_for_a_future_allocation():
    import study.randomization as package

    # Allocation happens only by allocating someone; everything else reads levels, seeds,
    # past allocations or simulations in their own namespace.
    assert sorted(package.__all__) == [
        "AllocationError",
        "Mismatch",
        "Verification",
        "allocate",
        "allocation_seed",
        "counts_csv",
        "factor_levels",
        "parse_stratum_key",
        "simulate",
        "stratum_key",
        "stratum_levels",
        "verify_allocations",
    ]
