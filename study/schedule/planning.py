"""Planning: a protocol's schedule becomes one participant's occasions, as UTC instants.

`plan_occasions` is pure: the same protocol, enrollment instant, time zone and seed always give
the same plan, which is what makes `flourish schedule preview` trustworthy and lets the rolling
horizon (`study.schedule.materialise`) compute any stretch of a schedule again later.

What each schedule entry becomes (docs/scheduling.md has the long version):

* `baseline`: one occasion (wave 0) due at the enrollment instant. Without a `window` it stays
  open for `BASELINE_OPEN_FOR` (a year), for all practical purposes until completed.
* `wave`: waves 1..n at `local_time` on the local calendar date *enrollment date + offset*,
  with offset `start + (n-1) * every` (days and weeks are calendar steps; if either is given in
  minutes or hours, the offset is elapsed time and `local_time` applies on the date it reaches).
* `followup`: one occasion at `local_time`, `at` after enrollment, likewise. Its `wave` is its
  rank among the protocol's follow-ups by `at` (1 for the earliest).
* `ema`: `per_day` prompts a day for `days` days, at random whole minutes of `daily_window`
  at least `min_spacing` apart, each closing `expires_after` later; `wave` counts prompts from
  1. Entries with `opt_in: true` are planned only when `ema_opt_in` is true.

Windows close at due + `window`; reminders are at due + each reminder, moved out of quiet
hours, and kept only if still before the window closes. Local times resolve by the DST rules of
`study.schedule.localtime`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from study.protocol.schema import BaselineEntry, EmaEntry, FollowupEntry, WaveEntry
from study.protocol.types import Duration

from . import localtime

# A baseline without a window "stays open until completed"; a bound is still needed for the
# invitation's expiry and for compliance reports, and a year is beyond any trial's baseline.
BASELINE_OPEN_FOR = timedelta(days=365)


@dataclass(frozen=True)
class PlannedOccasion:
    """One occasion of a participant's plan: instants in UTC, `timezone` to show them locally.

    `invitation_at` is when the invitation may be sent: the due instant, or the end of quiet
    hours if the occasion falls inside them (a baseline at enrollment late in the evening).
    """

    schedule_key: str
    wave: int
    kind: str
    instruments: tuple[str, ...]
    due_at: datetime
    closes_at: datetime
    timezone: str
    invitation_at: datetime
    reminders: tuple[datetime, ...] = field(default=())

    @property
    def occasion(self) -> str:
        """`<schedule_key>#<wave>`, the occasion's name in previews and reports."""
        return f"{self.schedule_key}#{self.wave}"

    @property
    def due_local(self) -> datetime:
        return self.due_at.astimezone(ZoneInfo(self.timezone))

    @property
    def sort_key(self) -> tuple:
        return (self.due_at, self.schedule_key, self.wave)


def plan_occasions(
    protocol,
    *,
    enrolled_at: datetime,
    timezone: str,
    seed: str,
    horizon: timedelta | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ema_opt_in: bool = False,
) -> list[PlannedOccasion]:
    """The occasions of `protocol`'s schedule for one participant, ordered by due instant.

    `protocol` is a `Protocol` or its `ProtocolModel`. `seed` decides the EMA prompt times; pass
    one that includes the participant (`materialise` uses `<study seed>:<participant code>`).
    Occasions already past are kept: whoever uses the plan decides what to do with them.

    Limits, for computing a stretch of a long schedule cheaply: `horizon` keeps occasions due
    before `enrolled_at + horizon`, `until` those due before `until`, and `since` drops those
    whose window closed at or before `since`.
    """
    if enrolled_at.tzinfo is None:
        raise ValueError("enrolled_at must be an aware datetime (UTC)")
    model = getattr(protocol, "model", protocol)
    planner = _Planner(
        model=model,
        enrolled_at=enrolled_at.astimezone(UTC),
        tz=localtime.zone(timezone),
        timezone=timezone,
        seed=seed,
        since=since,
        until=_earliest(until, enrolled_at + horizon if horizon is not None else None),
    )
    plan = []
    followups = sorted(
        (
            (entry.at.seconds, index, key)
            for index, (key, entry) in enumerate(model.schedule.items())
            if isinstance(entry, FollowupEntry)
        )
    )
    followup_rank = {key: rank for rank, (_, _, key) in enumerate(followups, start=1)}
    for key, entry in model.schedule.items():
        if isinstance(entry, BaselineEntry):
            plan += planner.baseline(key, entry)
        elif isinstance(entry, WaveEntry):
            plan += planner.waves(key, entry)
        elif isinstance(entry, FollowupEntry):
            plan += planner.followup(key, entry, followup_rank[key])
        elif isinstance(entry, EmaEntry) and (ema_opt_in or not entry.opt_in):
            plan += planner.ema(key, entry)
    return sorted(plan, key=lambda occasion: occasion.sort_key)


def _earliest(*instants: datetime | None) -> datetime | None:
    given = [instant for instant in instants if instant is not None]
    return min(given) if given else None


@dataclass
class _Planner:
    model: object
    enrolled_at: datetime
    tz: ZoneInfo
    timezone: str
    seed: str
    since: datetime | None
    until: datetime | None

    @property
    def enrollment_date(self) -> date:
        return self.enrolled_at.astimezone(self.tz).date()

    @property
    def quiet(self):
        return self.model.channels.quiet_hours

    def _keep(self, occasion: PlannedOccasion) -> bool:
        if self.since is not None and occasion.closes_at <= self.since:
            return False
        return self.until is None or occasion.due_at < self.until

    def _beyond(self, due_at: datetime) -> bool:
        return self.until is not None and due_at >= self.until

    def _occasion(self, key, wave, entry, due_at, closes_at, reminders=()) -> PlannedOccasion:
        invitation_at = localtime.out_of_quiet_hours(due_at, self.quiet, self.tz)
        moved = sorted(
            {localtime.out_of_quiet_hours(instant, self.quiet, self.tz) for instant in reminders}
        )
        return PlannedOccasion(
            schedule_key=key,
            wave=wave,
            kind=entry.kind,
            instruments=tuple(entry.instruments),
            due_at=due_at,
            closes_at=closes_at,
            timezone=self.timezone,
            invitation_at=invitation_at,
            # A reminder is only worth sending after the invitation and while one can answer.
            reminders=tuple(r for r in moved if invitation_at < r < closes_at),
        )

    def _with_window(self, key, wave, entry, due_at: datetime) -> PlannedOccasion:
        closes_at = localtime.after(due_at, entry.window, self.tz)
        reminders = [localtime.after(due_at, r, self.tz) for r in entry.reminders]
        return self._occasion(key, wave, entry, due_at, closes_at, reminders)

    def _date_after(self, offset: list[Duration]) -> date:
        """The local date reached from enrollment by `offset` (a sum of durations)."""
        if all(step.is_calendar for step in offset):
            return self.enrollment_date + timedelta(days=sum(step.days for step in offset))
        elapsed = timedelta(seconds=sum(step.seconds for step in offset))
        return (self.enrolled_at + elapsed).astimezone(self.tz).date()

    def _at_local_time(self, offset: list[Duration], at: time) -> datetime:
        """`at` on the local date reached from enrollment by `offset`."""
        return localtime.resolve(self._date_after(offset), at, self.tz)

    # --- one method per kind of entry -----------------------------------------------------------

    def baseline(self, key: str, entry: BaselineEntry) -> list[PlannedOccasion]:
        due_at = self.enrolled_at
        if entry.window is not None:
            occasion = self._with_window(key, 0, entry, due_at)
        else:
            closes_at = due_at + BASELINE_OPEN_FOR
            reminders = [localtime.after(due_at, r, self.tz) for r in entry.reminders]
            occasion = self._occasion(key, 0, entry, due_at, closes_at, reminders)
        return [occasion] if self._keep(occasion) else []

    def waves(self, key: str, entry: WaveEntry) -> list[PlannedOccasion]:
        if entry.count is None and entry.until is None:
            raise ValueError(f"schedule entry {key!r} gives neither count nor until")
        plan = []
        for wave in _wave_numbers(entry):
            due_at = self._at_local_time(
                [entry.first_offset] + [entry.every] * (wave - 1), entry.local_time
            )
            if self._beyond(due_at):
                break
            occasion = self._with_window(key, wave, entry, due_at)
            if self._keep(occasion):
                plan.append(occasion)
        return plan

    def followup(self, key: str, entry: FollowupEntry, rank: int) -> list[PlannedOccasion]:
        due_at = self._at_local_time([entry.at], entry.local_time)
        occasion = self._with_window(key, rank, entry, due_at)
        return [occasion] if self._keep(occasion) else []

    def ema(self, key: str, entry: EmaEntry) -> list[PlannedOccasion]:
        day0 = self._date_after([entry.start]) if entry.start else self.enrollment_date
        window_start = entry.daily_window[0]
        skip = 0
        if self.since is not None:
            # Days wholly closed before `since` need no random draws: jump over them.
            skip = max(0, (self.since.astimezone(self.tz).date() - day0).days - 1)
        plan = []
        for day_index in range(skip, entry.days):
            day = day0 + timedelta(days=day_index)
            if self._beyond(localtime.resolve(day, window_start, self.tz)):
                break
            minutes = ema_minutes(self.seed, key, day, entry)
            for prompt, minute in enumerate(minutes):
                at = _time_after(window_start, minute)
                due_at = localtime.resolve(day, at, self.tz)
                if due_at < self.enrolled_at:
                    continue  # on the enrollment day, prompts before joining are not asked
                closes_at = localtime.after(due_at, entry.expires_after, self.tz)
                wave = day_index * entry.per_day + prompt + 1
                occasion = self._occasion(key, wave, entry, due_at, closes_at)
                if self._keep(occasion):
                    plan.append(occasion)
        return plan


def _wave_numbers(entry: WaveEntry) -> Iterator[int]:
    wave = 1
    while True:
        if entry.count is not None and wave > entry.count:
            return
        offset = entry.first_offset.seconds + (wave - 1) * entry.every.seconds
        if entry.until is not None and offset > entry.until.seconds:
            return
        yield wave
        wave += 1


def _time_after(start: time, minutes: int) -> time:
    total = start.hour * 60 + start.minute + minutes
    return time(total // 60, total % 60)


def ema_minutes(seed: str, key: str, day: date, entry: EmaEntry) -> list[int]:
    """Minutes after the daily window opens of one day's prompts, in order.

    Uniform over all placements with at least `min_spacing` between prompts: draw `per_day`
    whole minutes uniformly from the window shortened by the spacing the prompts need, sort
    them, and push the k-th one k spacings later. Each draw is SHA-256 of (seed, entry key,
    local date, prompt number), so a day's times never depend on other days, on the Python
    version or on anything but these four values.
    """
    start, end = entry.daily_window
    span = (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
    spacing = -(-entry.min_spacing.seconds // 60)
    slack = span - (entry.per_day - 1) * spacing
    if slack < 0:
        raise ValueError(
            f"{entry.per_day} prompts {entry.min_spacing} apart do not fit the daily window"
        )
    draws = sorted(
        _draw(f"{seed}\x1f{key}\x1f{day.isoformat()}\x1f{prompt}", slack + 1)
        for prompt in range(entry.per_day)
    )
    return [draw + prompt * spacing for prompt, draw in enumerate(draws)]


def _draw(material: str, below: int) -> int:
    digest = hashlib.sha256(material.encode()).digest()
    # 256 bits reduced modulo a few hundred: the bias is far below anything measurable.
    return int.from_bytes(digest, "big") % below
