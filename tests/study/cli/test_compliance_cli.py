"""`flourish compliance SLUG`: the summary table, `--csv` per occasion, `--blind`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from study.models import Allocation, Arm, Occasion, OutboundMessage, Participant
from study.protocol import load_protocol
from study.protocol.registry import register_protocol

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"
SLUG = "assistant-flourishing-rct"


@pytest.fixture
def study(sqlite_engine):
    """Two participants in two arms; each has a closed weekly occasion. The first answered it
    (sent 30 s after due, opened an hour later, completed 10 min after that), the second's SMS
    was undelivered and it was missed. The first also has an open wave 2."""
    # The command reports as of the real clock, so the timeline sits safely in the past.
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    with Session(sqlite_engine, expire_on_commit=False) as session:
        registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
        arms = {a.key: a.id for a in session.exec(select(Arm))}
        people = []
        for number, arm in enumerate(("instruct", "reflective"), start=1):
            participant = Participant(
                study_id=registration.study.id,
                code=f"P-CLI{number:03d}",
                status="enrolled",
                protocol_version_id=registration.version.id,
                enrolled_at=due,
            )
            session.add(participant)
            session.flush()
            session.add(
                Allocation(
                    participant_id=participant.id,
                    arm_id=arms[arm],
                    scheme="test",
                    sequence_number=number,
                )
            )
            people.append(participant)

        def occasion(participant, wave, closes, **values):
            row = Occasion(
                participant_id=participant.id,
                protocol_version_id=registration.version.id,
                schedule_key="weekly",
                wave=wave,
                kind="wave",
                instruments=["who5"],
                due_at=due,
                closes_at=closes,
                **values,
            )
            session.add(row)
            session.flush()
            return row

        def message(row, status):
            session.add(
                OutboundMessage(
                    participant_id=row.participant_id,
                    occasion_id=row.id,
                    channel="sms",
                    purpose="invitation",
                    status=status,
                    send_after=due,
                    sent_at=due + timedelta(seconds=30),
                )
            )

        answered = occasion(
            people[0],
            1,
            due + timedelta(days=1),
            status="completed",
            opened_at=due + timedelta(seconds=30, hours=1),
            completed_at=due + timedelta(seconds=30, hours=1, minutes=10),
        )
        message(answered, "delivered")
        missed = occasion(people[1], 1, due + timedelta(days=1), status="missed")
        message(missed, "undelivered")
        occasion(people[0], 2, due + timedelta(days=7), status="scheduled")
        session.commit()
    return due


def test_the_summary_shows_rates_by_arm_and_wave(flourish, study):
    result = flourish("compliance", SLUG)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert SLUG in lines[0]
    header = lines[1].split()
    assert header[:6] == ["arm", "occasion", "n", "due", "completed", "rate"]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[2:]}
    assert rows[("instruct", "weekly#1")][2:6] == ["1", "1", "1", "100.0%"]
    assert rows[("reflective", "weekly#1")][2:8] == ["1", "1", "0", "0.0%", "0", "1"]
    assert rows[("reflective", "weekly#1")][-2:] == ["sms", "1"]
    assert rows[("instruct", "weekly#2")][2:6] == ["1", "0", "0", "-"]
    assert rows[("(all", "arms)")][3:7] == ["3", "2", "1", "50.0%"]


def test_csv_gives_one_row_per_occasion_with_latencies_in_seconds(flourish, study):
    result = flourish("compliance", SLUG, "--csv")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 3
    answered = next(r for r in rows if r["status"] == "completed")
    assert (answered["participant"], answered["arm"], answered["wave"]) == (
        "P-CLI001",
        "instruct",
        "1",
    )
    assert answered["due_utc"] == study.isoformat()
    assert answered["delivery"] == "sms:delivered"
    assert (answered["due_to_sent_s"], answered["sent_to_opened_s"]) == ("30", "3600")
    assert (answered["opened_to_completed_s"], answered["due_to_completed_s"]) == ("600", "4230")
    assert answered["late"] == "no"
    missed = next(r for r in rows if r["status"] == "missed")
    assert (missed["reached"], missed["delivery"], missed["opened_utc"]) == (
        "sent",
        "sms:undelivered",
        "",
    )
    assert missed["sent_to_opened_s"] == ""


def test_blind_output_names_no_arm(flourish, study):
    # (The first line is the study's title, which names its designs.)
    table = flourish("compliance", SLUG, "--blind").output.split("\n", 1)[1]
    rows = flourish("compliance", SLUG, "--csv", "--blind").output

    for output in (table, rows):
        assert "instruct" not in output and "reflective" not in output
    assert "arm" not in rows.splitlines()[0].split(",")
    weekly1 = next(line.split() for line in table.splitlines() if line.startswith("weekly#1"))
    assert weekly1[:5] == ["weekly#1", "2", "2", "1", "50.0%"]


def test_no_contact_details_or_internal_ids_appear(flourish, study):
    output = flourish("compliance", SLUG, "--csv").output

    assert "@" not in output and "+44" not in output
    assert set(csv.DictReader(io.StringIO(output)).fieldnames) >= {"participant"}
    assert "participant_id" not in output


def test_an_unknown_study_is_an_error(flourish, study):
    result = flourish("compliance", "no-such-study")

    assert result.exit_code != 0
    assert "no study 'no-such-study'" in result.output
