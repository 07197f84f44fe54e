"""`flourish db backup` and `flourish db restore`: what they refuse, and a round trip."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from study.cli import main
from study.db import make_engine
from tests.support.databases import table_counts


@pytest.fixture
def flourish(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOURISH_ENV", "test")
    monkeypatch.setenv("FLOURISH_INSTANCE_PATH", str(tmp_path / "instance"))

    def run(url: str, *args: str, input: str | None = None):
        return CliRunner().invoke(main, ["--database-url", url, *args], input=input)

    return run


def url_of(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_backup_defaults_to_a_timestamped_file_under_the_instance_folder(
    flourish, sqlite_engine, tmp_path
):
    result = flourish(url_of(sqlite_engine), "db", "backup")
    assert result.exit_code == 0, result.output
    [made] = (tmp_path / "instance" / "backups").glob("flourish-*.sqlite3")
    assert f"to {made}" in result.output and "integrity ok" in result.output


def test_backup_never_replaces_an_existing_file(flourish, sqlite_engine, tmp_path):
    target = tmp_path / "keep.sqlite3"
    target.write_bytes(b"an older backup")
    result = flourish(url_of(sqlite_engine), "db", "backup", str(target))
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert target.read_bytes() == b"an older backup"


def test_postgres_is_sent_to_pg_dump(flourish):
    result = flourish("postgresql://u:secret@db.example.org/flourish", "db", "backup", "x.dump")
    assert result.exit_code == 1
    assert "pg_dump" in result.output and "secret" not in result.output


def test_restore_refuses_a_file_that_is_not_a_flourish_database(flourish, sqlite_engine, tmp_path):
    before = table_counts(sqlite_engine)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    result = flourish(url_of(sqlite_engine), "db", "restore", "--yes", str(junk))
    assert result.exit_code == 1 and "not a SQLite database" in result.output

    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    result = flourish(url_of(sqlite_engine), "db", "restore", "--yes", str(empty))
    assert result.exit_code == 1 and "not a Flourish database" in result.output
    assert table_counts(sqlite_engine) == before


def test_restore_asks_first_and_then_replaces_the_database(flourish, sqlite_engine, tmp_path):
    backup = tmp_path / "b.sqlite3"
    assert flourish(url_of(sqlite_engine), "db", "backup", str(backup)).exit_code == 0
    target_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"

    declined = flourish(target_url, "db", "restore", str(backup), input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output

    accepted = flourish(target_url, "db", "restore", str(backup), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "up to date" in accepted.output
    target = make_engine(target_url)
    assert table_counts(target) == table_counts(sqlite_engine)
    target.dispose()
