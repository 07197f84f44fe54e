"""`flourish schedule preview|replan|extend`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from study.models import AuditEvent, Occasion, Participant
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from tests.study.web.conftest import EXAMPLE

FIELDS = ["occasion", "instrument", "due_local", "due_utc", "closes_utc"]


def rows(output: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(output))
    assert reader.fieldnames == FIELDS
    return list(reader)


def preview(flourish, *extra: str):
    result = flourish(
        "schedule", "preview", str(EXAMPLE),
        "--enrolled-at", "2026-03-02T09:00:00+00:00", "--tz", "America/New_York", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return rows(result.output)


def test_preview_prints_one_row_per_instrument_per_occasion(flourish):
    printed = preview(flourish)

    # baseline 8 instruments, 12 weekly waves of 2, follow-ups of 6, 6 and 8, 21 EMA prompts.
    assert len(printed) == 8 + 24 + 20 + 21
    assert printed[0] == {
        "occasion": "baseline#0",
        "instrument": "who5",
        "due_local": "2026-03-02T04:00:00-05:00",
        "due_utc": "2026-03-02T09:00:00+00:00",
        "closes_utc": "2026-03-09T08:00:00+00:00",  # 7 calendar days: 04:00 EDT on the 9th
    }
    weekly = [row for row in printed if row["occasion"].startswith("weekly#")]
    assert [row["instrument"] for row in weekly[:2]] == ["who5", "ucla3"]
    assert {row["occasion"] for row in weekly} == {f"weekly#{n}" for n in range(1, 13)}
    first = weekly[0]
    # The clocks went forward on 8 March: 19:00 EDT is 23:00 UTC.
    assert (first["due_local"], first["due_utc"], first["closes_utc"]) == (
        "2026-03-09T19:00:00-04:00",
        "2026-03-09T23:00:00+00:00",
        "2026-03-11T23:00:00+00:00",
    )
    assert [r["occasion"] for r in printed if r["occasion"].startswith("week_")][::6][:2] == [
        "week_6#1",
        "week_12#2",
    ]
    for row in printed:
        local = datetime.fromisoformat(row["due_local"])
        assert local == datetime.fromisoformat(row["due_utc"])
        assert datetime.fromisoformat(row["closes_utc"]) > local


def test_preview_is_reproducible_and_the_seed_moves_only_ema(flourish):
    again = preview(flourish)
    assert preview(flourish) == again
    other = preview(flourish, "--seed", "another")
    changed = {a["occasion"] for a, b in zip(again, other, strict=True) if a != b}
    assert changed and all(name.startswith("ema_week_1#") for name in changed)


def test_preview_can_leave_out_opt_in_ema_and_stop_after_some_days(flourish):
    no_ema = preview(flourish, "--no-ema-opt-in")
    assert not any(row["occasion"].startswith("ema") for row in no_ema)

    fortnight = preview(flourish, "--days", "14")
    assert {row["occasion"] for row in fortnight if not row["occasion"].startswith("ema")} == {
        "baseline#0",
        "weekly#1",
    }
    end = datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(days=14)
    assert all(datetime.fromisoformat(row["due_utc"]) < end for row in fortnight)


def test_preview_reads_an_enrollment_time_without_offset_as_local_time(flourish):
    result = flourish(
        "schedule", "preview", str(EXAMPLE),
        "--enrolled-at", "2026-07-01T10:00", "--tz", "Asia/Kolkata", "--no-ema-opt-in",
    )  # fmt: skip
    first = rows(result.output)[0]
    assert first["due_local"] == "2026-07-01T10:00:00+05:30"
    assert first["due_utc"] == "2026-07-01T04:30:00+00:00"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--enrolled-at", "2026-03-02T09:00:00Z", "--tz", "Mars/Olympus"], "IANA time zone"),
        (["--enrolled-at", "next tuesday", "--tz", "Europe/London"], "ISO 8601"),
    ],
)
def test_preview_explains_bad_input(flourish, args, message):
    result = flourish("schedule", "preview", str(EXAMPLE), *args)
    assert result.exit_code == 2
    assert message in result.output


# --- with a database ----------------------------------------------------------------------------


@pytest.fixture
def enrolled(sqlite_engine):
    with Session(sqlite_engine, expire_on_commit=False) as session:
        registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
        now = datetime.now(UTC)
        participant = Participant(
            study_id=registration.study.id,
            code="P-CLISCHED",
            status="enrolled",
            protocol_version_id=registration.version.id,
            timezone="Europe/London",
            preferred_channel="sms",
            enrolled_at=now - timedelta(days=1),
        )
        session.add(participant)
        session.commit()
        return participant


def test_extend_writes_every_enrolled_participants_next_weeks(flourish, sqlite_engine, enrolled):
    result = flourish("schedule", "extend")

    assert result.exit_code == 0, result.output
    assert "checked 1, extended 1" in result.output
    with Session(sqlite_engine) as session:
        assert session.exec(select(Occasion)).all()
    again = flourish("schedule", "extend")
    assert "occasions 0" in again.output


def test_replan_moves_the_future_to_a_new_zone_and_is_audited_as_the_os_user(
    flourish, sqlite_engine, enrolled
):
    flourish("schedule", "extend")

    result = flourish("schedule", "replan", "P-CLISCHED", "--tz", "Asia/Kolkata")

    assert result.exit_code == 0, result.output
    assert "P-CLISCHED:" in result.output and "cancelled" in result.output
    with Session(sqlite_engine) as session:
        participant = session.exec(select(Participant)).one()
        assert participant.timezone == "Asia/Kolkata"
        waves = session.exec(
            select(Occasion).where(
                Occasion.schedule_key == "weekly", Occasion.status == "scheduled"
            )
        ).all()
        assert waves and {w.due_at.strftime("%H:%M") for w in waves} == {"13:30"}
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "schedule.replan")).one()
        assert event.actor.startswith("cli:") and event.details["reason"] == "timezone"
        moved = session.exec(
            select(AuditEvent).where(AuditEvent.action == "participant.timezone")
        ).one()
        assert moved.details["participant"] == "P-CLISCHED" and moved.actor.startswith("cli:")


def test_replan_refuses_unknown_codes_and_zones(flourish, enrolled):
    unknown = flourish("schedule", "replan", "P-NOBODY")
    assert unknown.exit_code == 1 and "no participant" in unknown.output
    bad_zone = flourish("schedule", "replan", "P-CLISCHED", "--tz", "Nowhere/Special")
    assert bad_zone.exit_code == 2 and "IANA" in bad_zone.output
