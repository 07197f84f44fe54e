"""Local times across daylight-saving changes, in five zones with different rules.

A weekly survey at 19:00 stays at 19:00 local time when the clocks change, so its UTC instant
moves by the size of the shift. A local time that does not exist (the spring-forward gap) moves
forward to the first valid instant, the moment the clocks change; one that exists twice (the
fall-back overlap) takes its first occurrence. Hours are elapsed time, days calendar steps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from study.protocol import load_protocol
from study.protocol.schema import FollowupEntry, WaveEntry
from study.protocol.types import parse_duration
from study.schedule import plan_occasions
from study.schedule.localtime import add_days, resolve

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"

# (zone, spring-forward date, a local time in its gap, the first valid instant after the gap,
#  fall-back date, a local time in its overlap, the UTC offset of its first occurrence)
ZONES = [
    ("America/New_York", date(2026, 3, 8), time(2, 30), "03:00:00-04:00",
     date(2026, 11, 1), time(1, 30), timedelta(hours=-4)),
    ("Europe/London", date(2026, 3, 29), time(1, 30), "02:00:00+01:00",
     date(2026, 10, 25), time(1, 30), timedelta(hours=1)),
    ("Australia/Sydney", date(2026, 10, 4), time(2, 30), "03:00:00+11:00",
     date(2026, 4, 5), time(2, 30), timedelta(hours=11)),
    ("Pacific/Chatham", date(2026, 9, 27), time(3, 0), "03:45:00+13:45",
     date(2026, 4, 5), time(3, 0), timedelta(hours=13, minutes=45)),
]  # fmt: skip


def protocol_with(**entries):
    """The example protocol with its schedule replaced and no quiet hours (so that night-time
    occasions can be planned at all)."""
    protocol = load_protocol(EXAMPLE).model
    channels = protocol.channels.model_copy(update={"quiet_hours": None})
    return protocol.model_copy(update={"schedule": entries, "channels": channels})


def weekly(local_time="19:00", window="7d", reminders=()):
    return WaveEntry(
        kind="wave",
        instruments=("who5",),
        every=parse_duration("7d"),
        count=4,
        local_time=time.fromisoformat(local_time),
        window=parse_duration(window),
        reminders=tuple(parse_duration(r) for r in reminders),
    )


def followup(at: str, local_time: str, window="2h"):
    return FollowupEntry(
        kind="followup",
        instruments=("who5",),
        at=parse_duration(at),
        local_time=time.fromisoformat(local_time),
        window=parse_duration(window),
    )


def local_noon_before(day: date, zone: str, days_before: int) -> datetime:
    """An enrollment instant: noon local time `days_before` days before `day`."""
    return datetime.combine(day - timedelta(days=days_before), time(12), ZoneInfo(zone))


def plan(protocol, zone, enrolled_at):
    return plan_occasions(protocol, enrolled_at=enrolled_at, timezone=zone, seed="dst")


@pytest.mark.parametrize("zone,spring,_gap,_first,fall,_overlap,_offset", ZONES)
@pytest.mark.parametrize("change", ["spring", "fall"])
def test_a_weekly_survey_stays_at_19_local_across_the_change(
    zone, spring, _gap, _first, fall, _overlap, _offset, change
):
    change_day = spring if change == "spring" else fall
    enrolled_at = local_noon_before(change_day, zone, days_before=10)

    waves = plan(protocol_with(weekly=weekly()), zone, enrolled_at)

    tz = ZoneInfo(zone)
    assert [w.due_local.strftime("%a %H:%M") for w in waves] == [
        enrolled_at.strftime("%a") + " 19:00"
    ] * 4
    dates = [w.due_local.date() for w in waves]
    assert [b - a for a, b in itertools.pairwise(dates)] == [timedelta(days=7)] * 3
    # Waves 1 (3 days before the change) and 2 (4 days after) differ by a week plus or minus
    # the shift: one hour, whichever way the clocks went.
    elapsed = waves[1].due_at - waves[0].due_at
    shift = waves[1].due_local.utcoffset() - waves[0].due_local.utcoffset()
    assert abs(shift) == timedelta(hours=1)
    assert elapsed == timedelta(days=7) - shift
    assert all(w.due_at.tzinfo == UTC or w.due_at.utcoffset() == timedelta(0) for w in waves)
    assert waves[0].due_at.astimezone(tz).hour == 19


def test_in_kolkata_there_is_no_change_and_19_00_is_always_13_30_utc():
    enrolled_at = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Kolkata"))

    waves = plan(protocol_with(weekly=weekly()), "Asia/Kolkata", enrolled_at)

    assert [w.due_at.astimezone(UTC).strftime("%H:%M") for w in waves] == ["13:30"] * 4
    assert [w.due_local.isoformat() for w in waves][:2] == [
        "2026-03-08T19:00:00+05:30",
        "2026-03-15T19:00:00+05:30",
    ]


@pytest.mark.parametrize("zone,spring,gap,first_valid,_fall,_overlap,_offset", ZONES)
def test_a_time_in_the_spring_forward_gap_moves_to_the_first_valid_instant(
    zone, spring, gap, first_valid, _fall, _overlap, _offset
):
    enrolled_at = local_noon_before(spring, zone, days_before=5)
    protocol = protocol_with(check=followup("5d", gap.strftime("%H:%M")))

    (occasion,) = plan(protocol, zone, enrolled_at)

    assert occasion.due_local.isoformat() == f"{spring.isoformat()}T{first_valid}"
    # The first valid instant is the transition itself: a second earlier is still before it.
    before = (occasion.due_at - timedelta(seconds=1)).astimezone(ZoneInfo(zone))
    assert before.utcoffset() != occasion.due_local.utcoffset()


@pytest.mark.parametrize("zone,_spring,_gap,_first,fall,overlap,first_offset", ZONES)
def test_an_ambiguous_time_on_fall_back_takes_its_first_occurrence(
    zone, _spring, _gap, _first, fall, overlap, first_offset
):
    enrolled_at = local_noon_before(fall, zone, days_before=5)
    protocol = protocol_with(check=followup("5d", overlap.strftime("%H:%M")))

    (occasion,) = plan(protocol, zone, enrolled_at)

    assert occasion.due_local.time() == overlap
    assert occasion.due_local.utcoffset() == first_offset
    # The same wall time an hour later is the second occurrence, which was not chosen.
    later = (occasion.due_at + timedelta(hours=1)).astimezone(ZoneInfo(zone))
    assert later.time() == overlap


def test_resolve_is_the_identity_for_ordinary_times_and_ignores_the_day_of_the_week():
    tz = ZoneInfo("Pacific/Chatham")
    instant = resolve(date(2026, 6, 1), time(19, 0), tz)
    assert instant == datetime(2026, 6, 1, 6, 15, tzinfo=UTC)  # 19:00 at +12:45 in winter
    assert add_days(instant, 7, tz).astimezone(tz).time() == time(19, 0)


def test_a_calendar_window_closes_at_the_same_local_time_an_elapsed_one_does_not():
    zone = "America/New_York"
    enrolled_at = local_noon_before(date(2026, 3, 8), zone, days_before=8)
    by_days = plan(protocol_with(weekly=weekly(window="2d")), zone, enrolled_at)[0]
    by_hours = plan(protocol_with(weekly=weekly(window="48h")), zone, enrolled_at)[0]

    # Wave 1 is due Saturday 7 March 19:00 EST; the clocks go forward on Sunday.
    assert by_days.due_local.isoformat() == "2026-03-07T19:00:00-05:00"
    assert by_days.closes_at.astimezone(ZoneInfo(zone)).isoformat() == "2026-03-09T19:00:00-04:00"
    assert by_hours.closes_at.astimezone(ZoneInfo(zone)).isoformat() == "2026-03-09T20:00:00-04:00"
    assert by_hours.closes_at - by_hours.due_at == timedelta(hours=48)


def test_reminders_in_hours_are_elapsed_time_across_the_change():
    zone = "Europe/London"
    enrolled_at = local_noon_before(date(2026, 10, 25), zone, days_before=8)
    wave = plan(
        protocol_with(weekly=weekly(window="3d", reminders=("24h", "2d"))), zone, enrolled_at
    )[0]

    tz = ZoneInfo(zone)
    assert wave.due_local.isoformat() == "2026-10-24T19:00:00+01:00"
    assert [r.astimezone(tz).isoformat() for r in wave.reminders] == [
        "2026-10-25T18:00:00+00:00",  # 24 hours later, and the clocks went back an hour
        "2026-10-26T19:00:00+00:00",  # two calendar days later, at the same local time
    ]
