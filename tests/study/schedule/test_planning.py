"""Planning a participant's occasions from the protocol's schedule (pure, no database)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from statistics import mean
from zoneinfo import ZoneInfo

import pytest

from study.protocol import load_protocol
from study.protocol.schema import BaselineEntry, EmaEntry, FollowupEntry, QuietHours, WaveEntry
from study.protocol.types import parse_duration
from study.schedule import BASELINE_OPEN_FOR, ema_minutes, plan_occasions

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"
LONDON = ZoneInfo("Europe/London")
# Monday 2 March 2026, 10:00 in London (GMT): outside the example's quiet hours 21:30-08:00.
ENROLLED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def example():
    return load_protocol(EXAMPLE)


def with_schedule(example, quiet=("21:30", "08:00"), **entries):
    model = example.model
    hours = None
    if quiet:
        hours = QuietHours(start=time.fromisoformat(quiet[0]), end=time.fromisoformat(quiet[1]))
    channels = model.channels.model_copy(update={"quiet_hours": hours})
    return model.model_copy(update={"schedule": entries, "channels": channels})


def d(value: str):
    return parse_duration(value)


def ema(**overrides):
    values = dict(
        kind="ema",
        instruments=("momentary_affect",),
        days=7,
        per_day=3,
        daily_window=(time(9), time(21)),
        min_spacing=d("90m"),
        expires_after=d("30m"),
    )
    values.update(overrides)
    return EmaEntry(**values)


def plan(protocol, **options):
    options.setdefault("enrolled_at", ENROLLED)
    options.setdefault("timezone", "Europe/London")
    options.setdefault("seed", "seed-1")
    return plan_occasions(protocol, **options)


# --- the example protocol -----------------------------------------------------------------------


def test_the_example_protocol_plans_baseline_12_weekly_waves_3_followups_and_a_week_of_ema(
    example,
):
    occasions = plan(example, ema_opt_in=True)

    assert Counter(o.schedule_key for o in occasions) == {
        "baseline": 1,
        "weekly": 12,
        "week_6": 1,
        "week_12": 1,
        "week_24": 1,
        "ema_week_1": 21,
    }
    assert len(occasions) == 37
    assert sum(len(o.instruments) for o in occasions) == 8 + 12 * 2 + 6 + 6 + 8 + 21
    assert occasions == sorted(occasions, key=lambda o: o.due_at)

    by_key = {o.occasion: o for o in occasions}
    baseline = by_key["baseline#0"]
    assert (baseline.kind, baseline.due_at) == ("baseline", ENROLLED)
    assert baseline.closes_at == ENROLLED + timedelta(days=7)
    assert baseline.reminders == (ENROLLED + timedelta(hours=24), ENROLLED + timedelta(hours=72))

    waves = [o for o in occasions if o.schedule_key == "weekly"]
    assert [w.wave for w in waves] == list(range(1, 13))
    assert [w.due_local.date().isoformat() for w in waves[:2]] == ["2026-03-09", "2026-03-16"]
    # 19:00 in London every time: GMT until 29 March, BST after.
    assert {w.due_local.strftime("%A %H:%M") for w in waves} == {"Monday 19:00"}
    assert waves[3].due_at.strftime("%H:%M") == "18:00"
    assert all(w.closes_at - w.due_at == timedelta(hours=48) for w in waves)
    assert all(w.reminders == (w.due_at + timedelta(hours=24),) for w in waves)

    followups = [by_key[f"{key}#{n}"] for n, key in enumerate(["week_6", "week_12", "week_24"], 1)]
    assert [f.due_local.date().isoformat() for f in followups] == [
        "2026-04-13",
        "2026-05-25",
        "2026-08-17",
    ]
    assert [len(f.reminders) for f in followups] == [2, 2, 2]
    assert followups[2].closes_at.astimezone(LONDON).isoformat() == "2026-08-24T19:00:00+01:00"


def test_opt_in_ema_is_planned_only_for_those_who_opted_in(example):
    without = plan(example)
    assert "ema_week_1" not in {o.schedule_key for o in without}
    assert len(without) == 16


def test_plan_accepts_the_protocol_or_its_model_and_refuses_a_naive_enrollment(example):
    assert plan(example) == plan(example.model)
    with pytest.raises(ValueError, match="aware"):
        plan(example, enrolled_at=datetime(2026, 3, 2, 10, 0))


def test_horizon_until_and_since_cut_the_plan_to_a_stretch(example):
    full = plan(example, ema_opt_in=True)
    two_weeks = plan(example, ema_opt_in=True, horizon=timedelta(days=14))
    assert two_weeks == [o for o in full if o.due_at < ENROLLED + timedelta(days=14)]

    since = ENROLLED + timedelta(days=30)
    until = ENROLLED + timedelta(days=60)
    stretch = plan(example, ema_opt_in=True, since=since, until=until)
    assert stretch == [o for o in full if o.closes_at > since and o.due_at < until]
    # Wave 4 (30 March 19:00) is still open on 1 April at 10:00, until 19:00.
    assert [o.occasion for o in stretch][:2] == ["weekly#4", "weekly#5"]


# --- windows, reminders and quiet hours ---------------------------------------------------------


def test_a_baseline_without_window_stays_open_for_the_documented_default(example):
    protocol = with_schedule(
        example, baseline=BaselineEntry(kind="baseline", instruments=("who5",))
    )
    (baseline,) = plan(protocol)
    assert baseline.closes_at == ENROLLED + BASELINE_OPEN_FOR
    assert timedelta(days=365) <= BASELINE_OPEN_FOR


def test_enrolled_in_quiet_hours_the_baseline_is_due_now_but_invited_when_they_end(example):
    protocol = with_schedule(
        example,
        baseline=BaselineEntry(
            kind="baseline", instruments=("who5",), window=d("7d"), reminders=(d("1h"), d("24h"))
        ),
    )
    late = datetime(2026, 3, 2, 23, 15, tzinfo=UTC)  # 23:15 in London

    (baseline,) = plan(protocol, enrolled_at=late)

    assert baseline.due_at == late
    assert baseline.invitation_at.astimezone(LONDON).isoformat() == "2026-03-03T08:00:00+00:00"
    # 1 hour later is 00:15, also quiet: it would coincide with the invitation and is dropped.
    # 24 hours later is 23:15 the next day: moved to 08:00 the day after.
    assert [r.astimezone(LONDON).isoformat() for r in baseline.reminders] == [
        "2026-03-04T08:00:00+00:00"
    ]


def test_reminders_moved_out_of_quiet_hours_are_kept_only_inside_the_window(example):
    protocol = with_schedule(
        example,
        evening=FollowupEntry(
            kind="followup",
            instruments=("who5",),
            at=d("7d"),
            local_time=time(21),
            window=d("12h"),
            reminders=(d("30m"), d("1h"), d("3h")),
        ),
    )
    (occasion,) = plan(protocol)

    # 21:30 and 22:00 fall in quiet hours (21:30-08:00) and both move to 08:00, inside the
    # window (21:00 + 12h = 09:00), where they are one reminder; midnight is quiet too.
    assert occasion.due_local.strftime("%H:%M") == "21:00"
    assert [r.astimezone(LONDON).strftime("%d %H:%M") for r in occasion.reminders] == ["10 08:00"]

    short = with_schedule(
        example,
        evening=FollowupEntry(
            kind="followup",
            instruments=("who5",),
            at=d("7d"),
            local_time=time(21),
            window=d("2h"),
            reminders=(d("1h"),),
        ),
    )
    (occasion,) = plan(short)
    assert occasion.reminders == ()  # 22:00 moves to 08:00, after the window closed at 23:00


def test_quiet_hours_within_one_day_are_handled_too(example):
    protocol = with_schedule(
        example,
        quiet=("12:00", "14:00"),
        lunch=FollowupEntry(
            kind="followup",
            instruments=("who5",),
            at=d("1d"),
            local_time=time(11),
            window=d("6h"),
            reminders=(d("90m"),),
        ),
    )
    (occasion,) = plan(protocol)
    assert [r.astimezone(LONDON).strftime("%H:%M") for r in occasion.reminders] == ["14:00"]


def test_waves_until_an_offset_and_in_elapsed_units(example):
    by_until = with_schedule(
        example,
        quiet=None,
        fortnightly=WaveEntry(
            kind="wave",
            instruments=("who5",),
            every=d("2w"),
            until=d("8w"),
            local_time=time(19),
            window=d("2d"),
        ),
    )
    waves = plan(by_until)
    assert [w.due_local.date().isoformat() for w in waves] == [
        "2026-03-16",
        "2026-03-30",
        "2026-04-13",
        "2026-04-27",
    ]

    hourly_start = with_schedule(
        example,
        quiet=None,
        daily=WaveEntry(
            kind="wave",
            instruments=("who5",),
            every=d("24h"),
            start=d("36h"),
            count=2,
            local_time=time(19),
            window=d("2h"),
        ),
    )
    # Elapsed offsets: 36 h after 10:00 on the 2nd is the 3rd at 22:00, so the 3rd at 19:00.
    waves = plan(hourly_start)
    assert [w.due_local.isoformat() for w in waves] == [
        "2026-03-03T19:00:00+00:00",
        "2026-03-04T19:00:00+00:00",
    ]


def test_followups_are_numbered_by_when_they_come_not_where_they_are_written(example):
    protocol = with_schedule(
        example,
        late=FollowupEntry(
            kind="followup", instruments=("who5",), at=d("12w"), local_time=time(19), window=d("1d")
        ),
        early=FollowupEntry(
            kind="followup", instruments=("who5",), at=d("6w"), local_time=time(19), window=d("1d")
        ),
    )
    assert [o.occasion for o in plan(protocol)] == ["early#1", "late#2"]


# --- EMA ----------------------------------------------------------------------------------------


def test_ema_prompts_fall_in_the_daily_window_with_the_minimum_spacing(example):
    protocol = with_schedule(example, ema=ema(start=d("1d"), days=30))

    prompts = plan(protocol)

    assert len(prompts) == 90
    assert [p.wave for p in prompts] == list(range(1, 91))
    by_day = {}
    for prompt in prompts:
        by_day.setdefault(prompt.due_local.date(), []).append(prompt)
        assert time(9) <= prompt.due_local.time() <= time(21)
        assert prompt.closes_at - prompt.due_at == timedelta(minutes=30)
        assert prompt.reminders == ()
        assert prompt.invitation_at == prompt.due_at
    assert len(by_day) == 30 and min(by_day).isoformat() == "2026-03-03"
    for day in by_day.values():
        assert len(day) == 3
        gaps = [b.due_at - a.due_at for a, b in itertools.pairwise(day)]
        assert all(gap >= timedelta(minutes=90) for gap in gaps)
    # Random, not fixed: the days do not all look alike.
    assert len({tuple(p.due_local.time() for p in day) for day in by_day.values()}) > 25


def test_ema_times_are_reproducible_from_the_seed_and_differ_between_seeds(example):
    protocol = with_schedule(example, ema=ema())
    first = [p.due_at for p in plan(protocol, seed="study:P-AAAA")]
    again = [p.due_at for p in plan(protocol, seed="study:P-AAAA")]
    other = [p.due_at for p in plan(protocol, seed="study:P-BBBB")]
    assert first == again
    assert first != other
    # A day's times depend only on that day: planning a later stretch gives the same times.
    since = ENROLLED + timedelta(days=3)
    assert [p.due_at for p in plan(protocol, seed="study:P-AAAA", since=since)] == [
        t for t in first if t + timedelta(minutes=30) > since
    ]


def test_ema_placements_are_uniform_over_the_allowed_ones():
    entry = ema()
    # 3 prompts, 90 minutes apart, in 720 minutes: the free slack is 540 minutes, and the first
    # prompt is the smallest of 3 uniform draws on it, whose mean is 540 / 4 = 135 minutes.
    firsts, lasts = [], []
    for n in range(3000):
        minutes = ema_minutes(f"seed-{n}", "ema", ENROLLED.date(), entry)
        assert minutes == sorted(minutes) and minutes[0] >= 0 and minutes[-1] <= 720
        assert all(b - a >= 90 for a, b in itertools.pairwise(minutes))
        firsts.append(minutes[0])
        lasts.append(minutes[-1])
    assert mean(firsts) == pytest.approx(135, abs=6)
    assert mean(lasts) == pytest.approx(720 - 135, abs=6)
    assert min(firsts) == 0 or min(firsts) < 3
    assert max(lasts) > 715


def test_ema_without_start_begins_on_the_enrollment_day_but_never_before_enrollment(example):
    protocol = with_schedule(example, ema=ema(days=2))
    enrolled = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

    prompts = plan(protocol, enrolled_at=enrolled)

    assert all(p.due_at >= enrolled for p in prompts)
    first_day = [p for p in prompts if p.due_local.date() == enrolled.date()]
    assert len(first_day) < 3 and len(prompts) == len(first_day) + 3
    # Wave numbers count every prompt of the design, asked or not, so day 2 is always 4..6.
    assert [p.wave for p in prompts[len(first_day) :]] == [4, 5, 6]


def test_a_daily_window_too_short_for_the_prompts_is_refused():
    with pytest.raises(ValueError, match="do not fit"):
        ema_minutes("s", "ema", ENROLLED.date(), ema(per_day=10, min_spacing=d("2h")))
