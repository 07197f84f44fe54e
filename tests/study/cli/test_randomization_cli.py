"""`flourish randomization`: simulate prints `stratum,arm,count`; verify re-derives allocations."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from study.models import Allocation, Arm, Participant, Study
from study.protocol import load_protocol
from study.randomization import allocate, allocation_seed

EXAMPLE = Path(__file__).parents[3] / "examples" / "protocols" / "assistant-flourishing-rct.yaml"
SEED = "cli-test-seed-0123456789abcdef"


def parse_csv(output: str) -> list[tuple[str, str, int]]:
    lines = output.splitlines()
    assert lines[0] == "stratum,arm,count"
    return [(s, a, int(c)) for s, a, c in (line.rsplit(",", 2) for line in lines[1:])]


def test_simulate_prints_sorted_counts_summing_to_n(flourish):
    result = flourish("randomization", "simulate", str(EXAMPLE), "--n", "1000", "--seed", "7")
    assert result.exit_code == 0, result.output
    rows = parse_csv(result.output)
    assert sum(count for _, _, count in rows) == 1000
    assert rows == sorted(rows, key=lambda row: (row[0], row[1]))
    assert {stratum for stratum, _, _ in rows} == {
        "age_band=age_35_plus|wellbeing=high",
        "age_band=age_35_plus|wellbeing=low",
        "age_band=under_35|wellbeing=high",
        "age_band=under_35|wellbeing=low",
    }
    # Permuted blocks of 3 or 6: within a stratum no arm is more than 6 - 2 = 4 ahead.
    for stratum in {s for s, _, _ in rows}:
        counts = [count for s, _, count in rows if s == stratum]
        assert max(counts) - min(counts) <= 4


def test_simulate_is_reproducible_from_its_seed(flourish):
    args = ("randomization", "simulate", str(EXAMPLE), "--n", "300")
    first = flourish(*args, "--seed", "a").output
    assert flourish(*args, "--seed", "a").output == first
    assert flourish(*args, "--seed", "b").output != first


def test_simulate_takes_proportions_of_levels(flourish):
    result = flourish(
        "randomization", "simulate", str(EXAMPLE), "--n", "2000", "--seed", "p",
        "-p", "wellbeing=low:0,high:1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {s for s, _, _ in parse_csv(result.output)} == {
        "age_band=age_35_plus|wellbeing=high",
        "age_band=under_35|wellbeing=high",
    }


def test_simulate_reports_bad_input(flourish, tmp_path):
    bad = flourish("randomization", "simulate", str(EXAMPLE), "--n", "5", "--seed", "s",
                   "-p", "mood=low:1")  # fmt: skip
    assert bad.exit_code == 1
    assert "no stratification factor mood" in bad.output
    missing = flourish("randomization", "simulate", str(tmp_path / "no.yaml"), "--n", "5",
                       "--seed", "s")  # fmt: skip
    assert missing.exit_code == 1


def test_verify_re_derives_allocations_and_flags_a_changed_one(
    flourish, sqlite_engine, monkeypatch
):
    monkeypatch.setenv("FLOURISH_ALLOCATION_SEED", SEED)
    assert flourish("protocol", "load", str(EXAMPLE)).exit_code == 0
    protocol = load_protocol(EXAMPLE)
    with Session(sqlite_engine, expire_on_commit=False) as session:
        study = session.exec(select(Study)).one()
        for i in range(7):
            person = Participant(study_id=study.id, code=f"P-{i:04d}", status="consented")
            session.add(person)
            session.flush()
            allocate(
                session,
                participant=person,
                protocol=protocol,
                strata={"wellbeing": "low", "age_band": "under_35"},
                seed=allocation_seed(protocol, {"FLOURISH_ALLOCATION_SEED": SEED}),
                actor="test",
            )
        session.commit()

    result = flourish("randomization", "verify", "assistant-flourishing-rct")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "assistant-flourishing-rct: 7 randomised allocation(s) re-derived from the seed, "
        "0 mismatch(es); 0 chosen by preference (not randomised)\n"
    )
    assert SEED not in result.output

    with Session(sqlite_engine) as session:
        third = session.exec(select(Allocation).where(Allocation.sequence_number == 3)).one()
        other = session.exec(select(Arm.id, Arm.key).where(Arm.id != third.arm_id)).first()
        third.arm_id = other.id
        session.add(third)
        session.commit()
    result = flourish("randomization", "verify", "assistant-flourishing-rct")
    assert result.exit_code == 1
    assert result.output.startswith(f"mismatch: #3 P-0002 [age_band=under_35|wellbeing=low]: "
                                    f"recorded {other.key}, the seed gives ")  # fmt: skip
    assert "1 mismatch(es)" in result.output


def test_verify_with_another_seed_reports_mismatches(flourish, sqlite_engine, monkeypatch):
    monkeypatch.setenv("FLOURISH_ALLOCATION_SEED", SEED)
    flourish("protocol", "load", str(EXAMPLE))
    protocol = load_protocol(EXAMPLE)
    with Session(sqlite_engine) as session:
        study = session.exec(select(Study)).one()
        for i in range(12):
            person = Participant(study_id=study.id, code=f"P-{i:04d}", status="enrolled")
            allocate(session, participant=person, protocol=protocol, seed=SEED, actor="test",
                     strata={"wellbeing": "high", "age_band": "under_35"})  # fmt: skip
        session.commit()
    monkeypatch.setenv("FLOURISH_ALLOCATION_SEED", "a-different-seed-altogether")
    result = flourish("randomization", "verify", "assistant-flourishing-rct")
    assert result.exit_code == 1
    assert "mismatch: #" in result.output


def test_verify_an_unknown_study(flourish):
    result = flourish("randomization", "verify", "no-such-study")
    assert result.exit_code == 1
    assert "there is no study 'no-such-study'" in result.output
