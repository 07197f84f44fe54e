"""Backups that restore: deploy/backup.sh and deploy/restore.sh, run as an operator would.

SQLite is copied with the online backup API while another process keeps writing; PostgreSQL is
dumped with pg_dump and restored with pg_restore into a fresh database. Either way the restored
database holds exactly what the backup holds, passes its integrity checks, and its audit chain
still verifies.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study import audit, migrate
from study.db import make_engine, unit_of_work
from tests.support.databases import audit_problems, table_counts
from tests.support.participants import make_real_time_trial
from tests.support.processes import BIN, ROOT, server_env

BACKUP = ROOT / "deploy" / "backup.sh"
RESTORE = ROOT / "deploy" / "restore.sh"

# Appends audit events, one transaction each, until its stop file appears.
WRITER = """
import sys, pathlib
from study import audit
from study.db import make_engine, unit_of_work
engine = make_engine(sys.argv[1])
stop = pathlib.Path(sys.argv[2])
n = 0
while not stop.exists():
    with unit_of_work(engine) as session:
        audit.record(session, "test:writer", "writer.tick", details={"n": n})
    n += 1
    if n == 1:
        print("writing", flush=True)
"""


def script(path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(path), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def operator_env(settings, database_url: str) -> dict[str, str]:
    env = server_env(settings, database_url, FLOURISH_BIN=str(BIN / "flourish"))
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def audit_events(engine) -> int:
    return table_counts(engine)["audit_event"]


def test_sqlite_backup_while_a_writer_writes_is_consistent_and_restores(
    sqlite_engine, settings, tmp_path
):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    make_real_time_trial(sqlite_engine, settings).enrol()
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(stop)],
        cwd=ROOT,
        env=server_env(settings, url),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        before = audit_events(sqlite_engine)
        result = script(BACKUP, str(tmp_path / "backups"), env=operator_env(settings, url))
        after = audit_events(sqlite_engine)
        time.sleep(0.2)
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert writer.returncode == 0
    final = audit_events(sqlite_engine)
    assert before < after < final  # the writer wrote during the backup and after it

    backup = Path(result.stdout.strip().splitlines()[-1])
    assert backup.parent == tmp_path / "backups" and backup.suffix == ".sqlite3"
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(backup) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    copy = make_engine(f"sqlite:///{backup}")
    counts = table_counts(copy)
    copy.dispose()
    # A snapshot from some instant during the backup: never half a transaction.
    assert before <= counts["audit_event"] <= after
    assert audit_problems(make_engine(f"sqlite:///{backup}")) == []

    target_url = f"sqlite:///{tmp_path / 'restored' / 'flourish.sqlite3'}"
    restored = script(RESTORE, str(backup), env=operator_env(settings, target_url))
    assert "up to date" in restored.stdout and "intact" in restored.stdout
    target = make_engine(target_url)
    assert table_counts(target) == counts
    assert audit_problems(target) == []
    assert migrate.is_up_to_date(target)
    target.dispose()


@pytest.mark.postgres
def test_postgres_dump_restores_into_a_fresh_database_with_its_audit_chain_intact(
    postgres_template, settings, tmp_path
):
    source_url = postgres_template.fresh_url()
    source = make_engine(source_url)
    trial = make_real_time_trial(source, settings)
    for _ in range(5):
        trial.invitation(trial.enrol())
    counts = table_counts(source)
    assert counts["participant"] == 5 and counts["audit_event"] > 5

    result = script(BACKUP, str(tmp_path / "backups"), env=operator_env(settings, source_url))
    dump = Path(result.stdout.strip().splitlines()[-1])
    assert dump.suffix == ".dump" and dump.read_bytes()[:5] == b"PGDMP"

    target_url = postgres_template.empty_url()
    restored = script(RESTORE, str(dump), env=operator_env(settings, target_url))
    assert "up to date" in restored.stdout and "intact" in restored.stdout
    target = make_engine(target_url)
    assert table_counts(target) == counts
    assert audit_problems(target) == []
    # The restored database goes on working: its sequences came along, the chain extends.
    with unit_of_work(target) as session:
        event = audit.record(session, "test:after-restore", "restore.checked")
    assert event.id == counts["audit_event"] + 1
    assert audit_problems(target) == []
    source.dispose()
    target.dispose()
