"""Consistent copies of a SQLite database while it is in use, and putting one back.

PostgreSQL is backed up with its own tools (`pg_dump -Fc`, `pg_restore`; see deploy/backup.sh
and docs/deploy.md). A SQLite file, though, must not be copied with `cp` while a server writes
to it: the copy can catch half a transaction, and in WAL mode the newest commits live in the
`-wal` file, not the database file. SQLite's online backup API copies a consistent snapshot
instead. In WAL mode the snapshot is a read transaction, so writers carry on while it is taken.

A backup is written to a temporary file next to the target, checked with
`PRAGMA integrity_check`, flushed to disk and only then renamed into place, so a crash never
leaves a half-written file under the backup's name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine, make_url


class BackupError(RuntimeError):
    """The database cannot be backed up or restored as asked; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    """What a backup file holds: its path, size, schema revision and whether it is intact."""

    path: Path
    size_bytes: int
    revision: str | None
    integrity: str


def sqlite_path(engine_or_url: Engine | str) -> Path:
    """The file of a SQLite database URL; `BackupError` for any other database."""
    url = make_url(engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url))
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"{url.get_backend_name()} databases are backed up with their own tools "
            "(PostgreSQL: deploy/backup.sh, which runs pg_dump -Fc)"
        )
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has no file to back up")
    return Path(url.database)


def backup_sqlite(source: Path, target: Path) -> BackupInfo:
    """Copy the live database `source` to `target` through the online backup API.

    Safe while other processes read and write `source`. Refuses to overwrite an existing
    `target`. Returns what `inspect_backup` says of the finished file.
    """
    source, target = Path(source), Path(target)
    if not source.exists():
        raise BackupError(f"{source} does not exist")
    if target.exists():
        raise BackupError(f"{target} already exists; backups are never replaced")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        # The source is opened read-write: a read-only connection cannot join a WAL database
        # that no other process has open.
        with _connect(source) as src, _connect(partial) as dst:
            # pages=-1: the whole database in one step, from one read snapshot. Step-wise copies
            # restart from scratch whenever another connection writes, and may never finish.
            src.backup(dst, pages=-1)
            # The copy is a standalone file: no WAL beside it, readable by any sqlite3.
            dst.execute("PRAGMA journal_mode=DELETE")
        _fsync(partial)
        info = inspect_backup(partial)
        if info.integrity != "ok":
            raise BackupError(f"the copy failed its integrity check: {info.integrity}")
        os.replace(partial, target)
        _fsync_dir(target.parent)
    finally:
        partial.unlink(missing_ok=True)
    return BackupInfo(target, info.size_bytes, info.revision, info.integrity)


def inspect_backup(path: Path) -> BackupInfo:
    """Open a SQLite backup read-only: its integrity check result and schema revision."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    try:
        with _connect(path, readonly=True) as connection:
            integrity = "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
            try:
                row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.DatabaseError:
                row = None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a SQLite database: {exc}") from exc
    return BackupInfo(path, path.stat().st_size, row[0] if row else None, integrity)


def restore_sqlite(backup: Path, target: Path) -> BackupInfo:
    """Replace the database `target` with the contents of `backup`.

    The backup must pass its integrity check and be a Flourish database (it has a schema
    revision). Stop every web server and scheduler using `target` first: they would otherwise go
    on with what they had read before the restore. The copy goes through the backup API into
    `target`, so its WAL file is dealt with properly.
    """
    info = inspect_backup(backup)
    if info.integrity != "ok":
        raise BackupError(f"{backup} fails its integrity check: {info.integrity}")
    if info.revision is None:
        raise BackupError(f"{backup} is not a Flourish database (it has no schema revision)")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _connect(backup, readonly=True) as src, _connect(target) as dst:
        src.backup(dst, pages=-1)
    restored = inspect_backup(target)
    if restored.integrity != "ok":
        raise BackupError(f"the restored database fails its integrity check: {restored.integrity}")
    return restored


class _connect:
    """A sqlite3 connection that is closed (not merely committed) when the block ends."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        uri = f"{Path(path).resolve().as_uri()}{'?mode=ro' if readonly else ''}"
        self.connection = sqlite3.connect(uri, uri=True, timeout=30)

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *exc_info) -> None:
        self.connection.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the directory entry is on disk.
    # Some filesystems do not allow opening a directory for fsync; then there is nothing to do.
    with contextlib.suppress(OSError):
        _fsync(path)
