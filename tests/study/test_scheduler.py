"""The ticker: tasks run once per tick with the clock's time, failures are contained, and every
tick leaves a heartbeat that concurrent tickers can share."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from study.models import ServiceHeartbeat
from study.scheduler import Beater, Ticker, TickTask, tick_once, transactional, write_heartbeat

GENEROUS_TIMEOUT = 30.0


def heartbeats(engine) -> list[ServiceHeartbeat]:
    with Session(engine) as session:
        return list(session.exec(select(ServiceHeartbeat)).all())


def test_a_tick_writes_the_heartbeat_with_the_clocks_time(engine, clock):
    outcome = tick_once(engine, clock, [])

    [beat] = heartbeats(engine)
    assert beat.name == "scheduler"
    assert beat.beat_at == clock.now() == outcome.beat_at
    assert beat.pid > 0
    assert beat.host


def test_later_ticks_update_the_same_heartbeat_row(engine, clock):
    beater = Beater(started_at=clock.now())
    tick_once(engine, clock, [], beater=beater)
    clock.advance(seconds=15)
    tick_once(engine, clock, [], beater=beater)

    [beat] = heartbeats(engine)
    assert beat.beat_at == clock.now()
    assert beat.started_at == clock.now() - timedelta(seconds=15)


def test_tasks_run_in_order_with_the_ticks_instant(engine, clock):
    seen = []
    tasks = [
        TickTask("first", lambda eng, now: seen.append(("first", now))),
        TickTask("second", lambda eng, now: seen.append(("second", now))),
    ]

    tick_once(engine, clock, tasks)

    assert seen == [("first", clock.now()), ("second", clock.now())]


def test_a_failing_task_is_logged_and_does_not_stop_the_others_or_the_heartbeat(
    engine, clock, caplog
):
    ran = []

    def broken(_engine, _now):
        raise RuntimeError("provider timed out")

    tasks = [TickTask("broken", broken), TickTask("after", lambda eng, now: ran.append(now))]
    with caplog.at_level(logging.ERROR, logger="study.scheduler"):
        outcome = tick_once(engine, clock, tasks)

    assert outcome.failed == ("broken",)
    assert ran == [clock.now()]
    [beat] = heartbeats(engine)
    assert beat.beat_at == clock.now()
    [record] = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.exc_info is not None
    assert "provider timed out" in caplog.text


def test_a_transactional_task_commits_its_work(engine, clock):
    def touch(session, now):
        session.add(ServiceHeartbeat(name="probe", started_at=now, beat_at=now))

    tick_once(engine, clock, [transactional("probe", touch)])

    assert {beat.name for beat in heartbeats(engine)} == {"probe", "scheduler"}


def test_a_transactional_task_that_raises_is_rolled_back(engine, clock):
    def half_done(session, now):
        session.add(ServiceHeartbeat(name="probe", started_at=now, beat_at=now))
        session.flush()
        raise ValueError("second half failed")

    outcome = tick_once(engine, clock, [transactional("half-done", half_done)])

    assert outcome.failed == ("half-done",)
    assert [beat.name for beat in heartbeats(engine)] == ["scheduler"]


def test_two_tickers_on_one_database_share_the_heartbeat_without_conflict(engine, clock):
    """Several scheduler processes are allowed (DESIGN.md 2); their upserts must not collide."""
    errors = []
    barrier = threading.Barrier(2)

    def ticker_process(pid):
        beater = Beater(started_at=clock.now(), pid=pid)
        try:
            barrier.wait(timeout=GENEROUS_TIMEOUT)
            for _ in range(20):
                write_heartbeat(engine, beater, clock.now())
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ticker_process, args=(pid,)) for pid in (101, 202)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GENEROUS_TIMEOUT)

    assert errors == []
    [beat] = heartbeats(engine)
    assert beat.pid in (101, 202)
    assert beat.beat_at == clock.now()


def test_the_background_scheduler_actually_ticks(sqlite_engine, clock):
    ticked = threading.Event()
    ticker = Ticker(
        sqlite_engine,
        clock,
        [TickTask("signal", lambda eng, now: ticked.set())],
        interval_seconds=0.05,
    )
    ticker.start()
    try:
        assert ticked.wait(GENEROUS_TIMEOUT), "the ticker never ran its task"
    finally:
        ticker.stop()

    assert not ticker.running
    assert ticker.ticks >= 1
    assert [beat.name for beat in heartbeats(sqlite_engine)] == ["scheduler"]


def test_the_ticker_keeps_ticking_after_a_task_fails(sqlite_engine, clock):
    second_tick = threading.Event()
    calls = []

    def fails_once(_engine, now):
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("first tick breaks")
        second_tick.set()

    ticker = Ticker(sqlite_engine, clock, [TickTask("flaky", fails_once)], interval_seconds=0.05)
    ticker.start()
    try:
        assert second_tick.wait(GENEROUS_TIMEOUT), "a failing task stopped the ticker"
    finally:
        ticker.stop()

    assert ticker.failures["flaky"] == 1


def test_stop_waits_for_the_running_tick(sqlite_engine, clock):
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(_engine, _now):
        entered.set()
        release.wait(GENEROUS_TIMEOUT)
        finished.set()

    ticker = Ticker(sqlite_engine, clock, [TickTask("slow", slow)], interval_seconds=60)
    ticker.start()
    assert entered.wait(GENEROUS_TIMEOUT)
    stopper = threading.Thread(target=ticker.stop)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive(), "stop() returned while a tick was still running"
    release.set()
    stopper.join(GENEROUS_TIMEOUT)

    assert finished.is_set()
    assert not stopper.is_alive()


def test_tasks_added_later_run_from_the_next_tick(sqlite_engine, clock):
    ticker = Ticker(sqlite_engine, clock, interval_seconds=60)
    ran = []
    ticker.add_task(TickTask("late", lambda eng, now: ran.append(now)))

    ticker.tick()

    assert ran == [clock.now()]


def test_a_lost_database_is_counted_not_raised(tmp_path, clock, caplog):
    from study.db import make_engine

    # An empty database has no heartbeat table: the write fails as it would on a lost server.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    ticker = Ticker(engine, clock, interval_seconds=60)
    with caplog.at_level(logging.WARNING, logger="study.scheduler"):
        assert ticker.tick() is None

    assert ticker.heartbeat_failures == 1
    assert "could not write its heartbeat" in caplog.text
    engine.dispose()


def test_the_interval_must_be_positive(sqlite_engine, clock):
    with pytest.raises(ValueError, match="positive"):
        Ticker(sqlite_engine, clock, interval_seconds=0)
