"""The ticker: one APScheduler interval job that runs our periodic tasks and writes a heartbeat.

APScheduler 3.x is used only as a metronome (DESIGN.md, decision 2). It has no distributed lock:
every process that starts a scheduler runs every job, so correctness never depends on how many
tickers are running. Each task must be safe to run concurrently on several hosts (the dispatcher
claims rows atomically), and participant schedules are rows computed by our own code, never
APScheduler cron triggers.

Extension point. A task is a `TickTask(name, run)` where `run(engine, now)` does one round of
periodic work as of `now` (the ticker's `Clock`, so an accelerated or frozen clock drives it).
A task that fits in one transaction can be written as `run(session, now)` and wrapped with
`transactional`; a task that needs several (claim, then send outside any transaction, then record)
takes the engine and opens its own units of work. The tasks every scheduler process runs are
listed by `standard_tasks`; register new periodic work there.

Every tick, after the tasks, upserts a row in `service_heartbeat` that `/healthz` reads. A task
that raises is logged with its traceback and counted; it never stops the other tasks, the
heartbeat, or later ticks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .clock import Clock
from .config import Settings
from .db import unit_of_work
from .health import SCHEDULER_HEARTBEAT
from .models import ServiceHeartbeat

log = logging.getLogger(__name__)

TICK_JOB_ID = "flourish-tick"


@dataclass(frozen=True)
class TickTask:
    """One piece of periodic work: `run(engine, now)`, named for logs and failure counts."""

    name: str
    run: Callable[[Engine, datetime], None]


def transactional(name: str, work: Callable[[Session, datetime], None]) -> TickTask:
    """A task whose work fits in one transaction: committed if it returns, rolled back if not."""

    def run(engine: Engine, now: datetime) -> None:
        with unit_of_work(engine) as session:
            work(session, now)

    return TickTask(name, run)


def standard_tasks(settings: Settings) -> list[TickTask]:
    """The tasks every `flourish scheduler` (and `flourish run`) process runs, in this order.

    This is where periodic work is registered. With no tasks the ticker still beats, so
    `/healthz` can tell that it runs.
    """
    from .assistant.turns import close_idle_conversations
    from .compliance import sweep_task
    from .schedule.dispatch import dispatch_task
    from .schedule.horizon import horizon_task
    from .sms_surveys.conversation import expire_conversations

    tasks: list[TickTask] = []
    tasks.append(dispatch_task(settings))
    # Writes each participant's next stretch of occasions (the rolling horizon, a batch a tick).
    tasks.append(horizon_task(settings))
    # Closes windows: occasions past `closes_at` and not answered become missed.
    tasks.append(sweep_task(settings))
    # SMS survey conversations past their deadline are marked expired (for monitoring).
    tasks.append(
        transactional(
            "sms_surveys.expire",
            lambda session, now: expire_conversations(session, now=now),
        )
    )
    # Assistant chats idle past their timeout are closed and their working text blanked, also
    # for participants who never come back (the research copy is the interaction log).
    tasks.append(
        transactional(
            "assistant.close_idle",
            lambda session, now: close_idle_conversations(session, now=now),
        )
    )
    return tasks


@dataclass(frozen=True)
class Beater:
    """Who writes a heartbeat: the row's name, this host and process, and when it started."""

    started_at: datetime
    name: str = SCHEDULER_HEARTBEAT
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class TickOutcome:
    """What one tick did: the instant the tasks saw, those that failed, and the heartbeat time."""

    now: datetime
    beat_at: datetime
    failed: tuple[str, ...] = ()


def tick_once(
    engine: Engine,
    clock: Clock,
    tasks: Sequence[TickTask],
    *,
    beater: Beater | None = None,
) -> TickOutcome:
    """Run every task once as of `clock.now()`, then write the heartbeat; synchronously.

    Task exceptions are logged and reported in the outcome, not raised. A failure to write the
    heartbeat (the database is gone) is raised: there is nothing sensible to continue with.
    """
    now = clock.now()
    beater = beater or Beater(started_at=now)
    failed = []
    for task in tasks:
        try:
            task.run(engine, now)
        except Exception:
            log.exception("tick task %r failed at %s", task.name, now.isoformat())
            failed.append(task.name)
    beat_at = clock.now()
    write_heartbeat(engine, beater, beat_at)
    return TickOutcome(now=now, beat_at=beat_at, failed=tuple(failed))


def write_heartbeat(engine: Engine, beater: Beater, beat_at: datetime) -> None:
    """Insert or update the heartbeat row in one statement, so concurrent tickers never collide."""
    values = {
        "name": beater.name,
        "host": beater.host[:200],
        "pid": beater.pid,
        "started_at": beater.started_at,
        "beat_at": beat_at,
    }
    table = ServiceHeartbeat.__table__
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(engine.dialect.name)
    with engine.begin() as connection:
        if dialect is None:
            # No native upsert: update, then insert if there was nothing to update.
            changed = connection.execute(
                update(table).where(table.c.name == beater.name).values(**values)
            )
            if changed.rowcount == 0:
                connection.execute(table.insert().values(**values))
            return
        statement = dialect.insert(table).values(**values)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.name],
                set_={key: statement.excluded[key] for key in values if key != "name"},
            )
        )


class Ticker:
    """Runs `tasks` every `interval_seconds` on a background thread, beating after each tick.

    `start()` ticks once immediately and then on the interval (UTC, `max_instances=1` and
    `coalesce=True`: a slow tick delays the next rather than overlapping it, and missed ticks
    collapse into one). `stop()` waits for a running tick to finish. Counters in `ticks`,
    `failures` (per task) and `heartbeat_failures` say how it has gone.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        tasks: Sequence[TickTask] = (),
        *,
        interval_seconds: float,
        name: str = SCHEDULER_HEARTBEAT,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("the tick interval must be positive")
        self.engine = engine
        self.clock = clock
        self.tasks: list[TickTask] = list(tasks)
        self.interval_seconds = interval_seconds
        self.name = name
        self.ticks = 0
        self.failures: Counter[str] = Counter()
        self.heartbeat_failures = 0
        self._beater: Beater | None = None
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone=UTC)

    def add_task(self, task: TickTask) -> None:
        """Register another task; it runs from the next tick on."""
        with self._lock:
            self.tasks.append(task)

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> None:
        """Start ticking on a background thread (the first tick runs at once)."""
        self._beater = Beater(started_at=self.clock.now(), name=self.name)
        self._scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=self.interval_seconds, timezone=UTC),
            id=TICK_JOB_ID,
            name="flourish tick",
            max_instances=1,
            coalesce=True,
            # A late tick is always better than a skipped one: tasks act on what is due as of
            # their `now`, so running late only catches up. (APScheduler's default is 1 s.)
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()
        log.info(
            "ticker %r started: every %ss, tasks: %s",
            self.name,
            self.interval_seconds,
            ", ".join(task.name for task in self.tasks) or "none (heartbeat only)",
        )

    def stop(self, wait: bool = True) -> None:
        """Stop ticking; with `wait`, return only after a running tick has finished."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
            log.info("ticker %r stopped after %d ticks", self.name, self.ticks)

    def tick(self) -> TickOutcome | None:
        """One tick, as the background job runs it: never raises, counts what went wrong."""
        with self._lock:
            tasks = list(self.tasks)
        beater = self._beater or Beater(started_at=self.clock.now(), name=self.name)
        started = time.monotonic()
        try:
            outcome = tick_once(self.engine, self.clock, tasks, beater=beater)
        except Exception:
            self.heartbeat_failures += 1
            log.warning("ticker %r could not write its heartbeat", self.name, exc_info=True)
            return None
        self.ticks += 1
        self.failures.update(outcome.failed)
        if outcome.failed:
            log.warning(
                "tick at %s: %d of %d tasks failed (%s)",
                outcome.now.isoformat(),
                len(outcome.failed),
                len(tasks),
                ", ".join(outcome.failed),
            )
        else:
            log.debug(
                "tick at %s: %d tasks in %.3fs",
                outcome.now.isoformat(),
                len(tasks),
                time.monotonic() - started,
            )
        return outcome
