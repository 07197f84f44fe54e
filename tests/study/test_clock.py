"""The fake clock moves only when told to, and only forwards."""

from datetime import UTC, datetime, timedelta

import pytest

from study.clock import FakeClock, SystemClock


def test_fake_clock_advances_by_what_it_is_told(clock):
    start = clock.now()
    assert clock.advance(hours=36) == start + timedelta(hours=36)
    assert clock.now() == start + timedelta(hours=36)


def test_fake_clock_refuses_naive_starts_and_going_backwards(clock):
    with pytest.raises(ValueError):
        FakeClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        clock.advance(minutes=-1)


def test_system_clock_is_aware_utc():
    assert SystemClock().now().tzinfo is UTC
