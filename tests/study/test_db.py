"""Engines behave the same on SQLite and PostgreSQL where the domain depends on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import select

from study.db import make_engine, unit_of_work
from study.models import Study


def test_sqlite_enforces_foreign_keys_and_uses_wal(sqlite_engine):
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_instants_round_trip_as_aware_utc(engine):
    paris = timezone(timedelta(hours=1))
    with unit_of_work(engine) as session:
        session.add(
            Study(slug="s", title="S", created_at=datetime(2026, 3, 2, 10, 0, tzinfo=paris))
        )
    with unit_of_work(engine) as session:
        stored = session.exec(select(Study)).one().created_at
    assert stored == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert stored.tzinfo is UTC


def test_naive_instants_are_refused(engine):
    with pytest.raises(Exception, match="naive datetime"), unit_of_work(engine) as session:
        session.add(Study(slug="s", title="S", created_at=datetime(2026, 3, 2, 10, 0)))
        session.flush()


def test_unit_of_work_rolls_back_when_the_block_fails(engine):
    with pytest.raises(RuntimeError), unit_of_work(engine) as session:
        session.add(Study(slug="lost", title="Lost"))
        session.flush()
        raise RuntimeError("boom")
    with unit_of_work(engine) as session:
        assert session.exec(select(Study)).all() == []


def test_plain_postgresql_urls_use_psycopg_3():
    engine = make_engine("postgresql://u:p@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
