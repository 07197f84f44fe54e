"""The health report: `ok` when the database is migrated and a scheduler beat recently,
`degraded` when the scheduler is stale or missing, `down` when the database is not usable."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from study import migrate
from study.db import make_engine
from study.health import health_report
from study.scheduler import Beater, tick_once, write_heartbeat

STALE_AFTER = timedelta(minutes=2)


def test_a_migrated_database_with_a_fresh_heartbeat_is_ok(engine, clock):
    tick_once(engine, clock, [])
    clock.advance(seconds=30)

    report = health_report(engine, clock.now(), STALE_AFTER)

    assert report["status"] == "ok"
    assert report["database"]["status"] == "ok"
    assert report["database"]["dialect"] == engine.dialect.name
    assert report["database"]["revision"] == migrate.head_revision()
    assert report["scheduler"]["status"] == "ok"
    assert report["scheduler"]["age_seconds"] == 30.0
    assert report["checked_at"] == clock.now().isoformat()


def test_a_heartbeat_older_than_the_limit_is_stale_and_the_report_degraded(engine, clock):
    tick_once(engine, clock, [])
    clock.advance(STALE_AFTER + timedelta(seconds=1))

    report = health_report(engine, clock.now(), STALE_AFTER)

    assert report["status"] == "degraded"
    assert report["scheduler"]["status"] == "stale"
    assert report["scheduler"]["age_seconds"] == 121.0


def test_a_heartbeat_exactly_at_the_limit_still_counts(engine, clock):
    tick_once(engine, clock, [])
    clock.advance(STALE_AFTER)

    assert health_report(engine, clock.now(), STALE_AFTER)["scheduler"]["status"] == "ok"


def test_no_heartbeat_at_all_is_missing_and_the_report_degraded(engine, clock):
    report = health_report(engine, clock.now(), STALE_AFTER)

    assert report["status"] == "degraded"
    assert report["scheduler"]["status"] == "missing"
    assert "age_seconds" not in report["scheduler"]


def test_stale_after_may_be_given_in_seconds(engine, clock):
    tick_once(engine, clock, [])
    clock.advance(seconds=11)

    assert health_report(engine, clock.now(), 10)["scheduler"]["status"] == "stale"


def test_only_the_named_heartbeat_counts(engine, clock):
    write_heartbeat(engine, Beater(started_at=clock.now(), name="other-service"), clock.now())

    assert health_report(engine, clock.now(), STALE_AFTER)["scheduler"]["status"] == "missing"


def test_an_empty_database_is_down_as_not_migrated(tmp_path, clock):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        report = health_report(engine, clock.now(), STALE_AFTER)
    finally:
        engine.dispose()

    assert report["status"] == "down"
    assert report["database"]["reachable"] is True
    assert report["database"]["status"] == "not migrated"
    assert report["database"]["revision"] is None
    assert report["scheduler"]["status"] == "unknown"


def test_a_database_behind_the_newest_migration_is_down(tmp_path, clock, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    migrate.upgrade(engine)
    # As if this code shipped a newer migration the database has not had yet.
    monkeypatch.setattr(migrate, "head_revision", lambda: "9999_future")
    try:
        report = health_report(engine, clock.now(), STALE_AFTER)
    finally:
        engine.dispose()

    assert report["status"] == "down"
    assert report["database"]["status"] == "wrong revision"
    assert report["database"]["head"] == "9999_future"


def test_an_unreachable_database_is_down_without_leaking_the_connection_string(clock, caplog):
    engine = make_engine("postgresql://flourish:hunter2-secret@127.0.0.1:1/nothing")
    try:
        report = health_report(engine, clock.now(), STALE_AFTER)
    finally:
        engine.dispose()

    assert report["status"] == "down"
    assert report["database"]["reachable"] is False
    assert report["database"]["status"] == "unreachable"
    assert report["database"]["error"] == "OperationalError"
    assert "hunter2" not in json.dumps(report)
    assert "127.0.0.1" not in json.dumps(report)
    assert "database unreachable" in caplog.text


@pytest.mark.parametrize("status", ["ok", "degraded", "down"])
def test_the_report_is_json_serialisable(status, sqlite_engine, tmp_path, clock):
    engine = sqlite_engine
    if status == "ok":
        tick_once(engine, clock, [])
    elif status == "down":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    try:
        report = health_report(engine, clock.now(), STALE_AFTER)
    finally:
        if engine is not sqlite_engine:
            engine.dispose()

    assert report["status"] == status
    assert json.loads(json.dumps(report)) == report
