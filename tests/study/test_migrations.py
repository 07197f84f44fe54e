"""The migrations are the schema: they must agree with the models, and upgrading must keep data."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from study import migrate
from study.db import make_engine
from study.models import metadata


def test_migrated_database_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == [], f"models and migrations disagree: {differences}"


def test_upgrade_reaches_head_and_is_idempotent(engine):
    assert migrate.current_revision(engine) == migrate.head_revision()
    migrate.upgrade(engine)
    assert migrate.is_up_to_date(engine)


STEPS = list(zip(migrate.revisions(), migrate.revisions()[1:], strict=False))


@pytest.fixture
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    return request.getfixturevalue("postgres_template").empty_url()


@pytest.mark.parametrize(
    "empty_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize(("before", "after"), STEPS, ids=[f"{a}->{b}" for a, b in STEPS])
def test_each_upgrade_keeps_existing_rows(empty_url, before, after):
    engine = make_engine(empty_url)
    try:
        migrate.upgrade(engine, before)
        written = _fill_every_table(engine)
        migrate.upgrade(engine, after)
        reflected = sa.MetaData()
        reflected.reflect(engine)
        with engine.connect() as connection:
            for table_name, row in written.items():
                table = reflected.tables[table_name]
                kept = {name: value for name, value in row.items() if name in table.c}
                found = connection.execute(sa.select(table)).mappings().all()
                assert len(found) == 1, f"{table_name}: rows lost in {before}->{after}"
                assert {name: found[0][name] for name in kept} == kept
    finally:
        engine.dispose()


def test_the_audit_log_refuses_changes_in_the_database(engine):
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO audit_event (occurred_at, actor, action, entity_type, entity_id, "
                "before_hash, after_hash, details, prev_hash, event_hash) VALUES "
                "(:at, 'test', 'x', '', '', '', '', '{}', '', 'h1')"
            ),
            {"at": datetime(2026, 1, 1)},
        )
    for statement in ("UPDATE audit_event SET actor = 'someone else'", "DELETE FROM audit_event"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(sa.text(statement))
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT actor FROM audit_event")).scalar() == "test"


def _fill_every_table(engine) -> dict[str, dict]:
    """Insert one plausible row into every table, parents first; return what was written."""
    reflected = sa.MetaData()
    reflected.reflect(engine)
    written: dict[str, dict] = {}
    ids: dict[str, object] = {}
    with engine.begin() as connection:
        for table in reflected.sorted_tables:
            if table.name == "alembic_version":
                continue
            row = {}
            for column in table.columns:
                if column.primary_key and isinstance(column.type, sa.Integer):
                    continue
                foreign = next(iter(column.foreign_keys), None)
                if foreign is not None:
                    row[column.name] = ids[foreign.column.table.name]
                else:
                    row[column.name] = _sample(column)
            result = connection.execute(table.insert().values(**row))
            pk = table.primary_key.columns.values()[0]
            ids[table.name] = result.inserted_primary_key[0] if pk.name not in row else row[pk.name]
            written[table.name] = row
    return written


def _sample(column: sa.Column):
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 7
    if isinstance(kind, sa.Float | sa.Numeric):
        return 1.5
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 1, 2, 3, 4, 5)
    if isinstance(kind, sa.JSON):
        return {"kept": [1, 2]}
    if isinstance(kind, sa.LargeBinary):
        return b"\x00kept"
    if isinstance(kind, sa.String):
        text = f"kept-{column.name}"
        return text[: kind.length] if kind.length else text
    raise AssertionError(f"no sample value for {column.table.name}.{column.name}: {kind!r}")
