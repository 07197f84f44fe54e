"""Wall-clock time in a participant's IANA time zone, turned into UTC instants.

The rules (DESIGN.md, decision 2; docs/scheduling.md):

* A local time that does not exist (it falls in the gap when clocks go forward) moves forward
  to the first valid instant, the moment the clocks change: 02:30 on a spring-forward day in
  New York is 03:00 EDT.
* A local time that exists twice (clocks go back) is its first occurrence (`fold=0`): 01:30 on
  a fall-back day in New York is 01:30 EDT, not the EST one an hour later.
* Days and weeks are calendar steps: "7 days after 19:00" is 19:00 on the date a week later,
  whatever happened to the clocks in between. Minutes and hours are elapsed time.
* An instant inside quiet hours moves to the end of the quiet hours, in local time.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from study.protocol.types import Duration


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (ZoneInfoNotFoundError, a KeyError, if this server does not know it)."""
    return ZoneInfo(name)


def resolve(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which clocks in `tz` show `at` on `day`, by the rules above."""
    naive = datetime.combine(day, at.replace(tzinfo=None))
    first = naive.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == naive:
        return instant
    return _end_of_gap(naive, tz)


def _end_of_gap(naive: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant that skipped over `naive`: the first instant valid after it.

    Read with the offset before the change and with the one after it, the wall time gives two
    instants; the transition lies between them. It is found by bisection to the second, which
    works for any zone's rules (half-hour and 45-minute shifts, a skipped day in Samoa).
    """
    candidates = [naive.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    # Whole POSIX seconds: transitions happen on the second, and integers bisect exactly.
    low = math.floor(min(candidates).timestamp())
    high = math.ceil(max(candidates).timestamp())
    offset_before = _offset(low, tz)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(middle, tz) == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _offset(posix_seconds: int, tz: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(posix_seconds, UTC).astimezone(tz).utcoffset()


def local(instant: datetime, tz: ZoneInfo) -> datetime:
    """`instant` as the clocks in `tz` show it."""
    return instant.astimezone(tz)


def add_days(instant: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The same wall-clock time `days` calendar days later (or earlier), in UTC."""
    wall = instant.astimezone(tz)
    return resolve(wall.date() + timedelta(days=days), wall.time(), tz)


def after(instant: datetime, duration: Duration, tz: ZoneInfo) -> datetime:
    """`instant` + `duration`: calendar steps for days and weeks, elapsed time otherwise."""
    if duration.is_calendar:
        return add_days(instant, duration.days, tz)
    return instant + duration.timedelta


def in_quiet_hours(moment: time, start: time, end: time) -> bool:
    """Whether a wall-clock time is inside quiet hours `start`-`end` (which may span midnight)."""
    moment = moment.replace(tzinfo=None)
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def out_of_quiet_hours(instant: datetime, quiet, tz: ZoneInfo) -> datetime:
    """`instant`, or the end of the quiet hours it falls in (in `tz`), if `quiet` is given."""
    if quiet is None:
        return instant
    wall = instant.astimezone(tz)
    if not in_quiet_hours(wall.time(), quiet.start, quiet.end):
        return instant
    # Before the end time the quiet hours end today; after it (the evening part of quiet hours
    # spanning midnight) they end tomorrow.
    ends_today = wall.time().replace(tzinfo=None) < quiet.end
    day = wall.date() if ends_today else wall.date() + timedelta(days=1)
    return resolve(day, quiet.end, tz)
