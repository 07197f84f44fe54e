"""Durations and times of day, as protocol authors write them."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from study.protocol.types import Duration, parse_duration, parse_local_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("48h", timedelta(hours=48)),
        ("7d", timedelta(days=7)),
        ("12w", timedelta(weeks=12)),
        ("0d", timedelta(0)),
    ],
)
def test_durations_in_minutes_hours_days_and_weeks(text, expected):
    duration = parse_duration(text)
    assert duration.timedelta == expected
    assert str(duration) == text


def test_days_and_weeks_are_calendar_steps_and_hours_are_not():
    assert parse_duration("2w").is_calendar and parse_duration("2w").days == 14
    assert not parse_duration("48h").is_calendar
    assert parse_duration("48h").days == 0


def test_durations_compare_by_length_whatever_their_unit():
    assert parse_duration("1w") > parse_duration("6d")
    assert parse_duration("24h") <= parse_duration("1d")
    assert Duration(1, "w") != Duration(7, "d")  # equal length, but written differently


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("2 days", "'2 days' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("7y", "'7y' is not a duration"),
        (48, "48 has no unit"),
        (True, "True is not a duration"),
    ],
)
def test_bad_durations_say_how_to_write_one(value, hint):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert hint in str(caught.value)
    assert "e.g. 30m, 48h, 7d, 12w" in str(caught.value)


def test_times_of_day_are_24_hour_hh_mm():
    assert parse_local_time("19:00") == time(19, 0)
    assert parse_local_time("8:05") == time(8, 5)
    for bad in ("24:00", "19:60", "7pm", "1900", 1140):
        with pytest.raises(ValueError, match="is not a time of day"):
            parse_local_time(bad)
