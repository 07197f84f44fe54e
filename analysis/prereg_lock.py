"""Locking a preregistration: its content hash and time, in the audit log and beside the file.

    with unit_of_work(engine) as session:
        info, created = lock(session, path, actor="cli:alice")  # audit event + FILE.lock.json
    verify_lock(path).status            # "locked", "changed" or "unlocked"
    audit_confirms(session, info)       # the audit log holds the event the lock file names

The lock covers the file's exact bytes: any edit, even of a comment, makes the file "changed"
until it is locked again as an amendment, with a reason, which the audit log and the lock file
both keep.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select

from instruments.datafile import read_text
from study import audit
from study.models import AuditEvent

from .preregistration import PreregistrationError, content_hash, load_preregistration

LOCK_SUFFIX = ".lock.json"
AUDIT_ACTION_LOCK = "prereg.lock"
AUDIT_ACTION_AMEND = "prereg.amend"


class LockError(RuntimeError):
    """Locking refused: the file changed since its lock and no amendment reason was given."""


@dataclass(frozen=True)
class LockInfo:
    """What a lock froze: the file's hash, when, by whom, and the audit event recording it.

    `reason` is given for an amendment (a re-lock of changed content); `history` holds the
    earlier locks, oldest first.
    """

    sha256: str
    locked_at: datetime
    locked_by: str
    audit_event: str
    reason: str = ""
    history: tuple[LockInfo, ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["locked_at"] = self.locked_at.isoformat()
        data["history"] = [entry.to_dict() for entry in self.history]
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> LockInfo:
        return cls(
            sha256=data["sha256"],
            locked_at=datetime.fromisoformat(data["locked_at"]),
            locked_by=data["locked_by"],
            audit_event=data.get("audit_event", ""),
            reason=data.get("reason", ""),
            history=tuple(cls.from_dict(entry) for entry in data.get("history", ())),
        )


@dataclass(frozen=True)
class LockCheck:
    """Whether a file still matches its lock: status "locked", "changed" or "unlocked"."""

    status: str
    current_hash: str
    lock: LockInfo | None

    @property
    def ok(self) -> bool:
        return self.status == "locked"


def lock_path(path: str | Path) -> Path:
    """Where the lock of the preregistration at `path` is kept: beside it, FILE.lock.json."""
    return Path(str(path) + LOCK_SUFFIX)


def read_lock(path: str | Path) -> LockInfo | None:
    """The lock of the preregistration at `path`, or None if it was never locked."""
    target = lock_path(path)
    if not target.exists():
        return None
    return LockInfo.from_dict(json.loads(target.read_text(encoding="utf-8")))


def lock(
    session: Session,
    path: str | Path,
    actor: str,
    *,
    reason: str | None = None,
    now: datetime | None = None,
) -> tuple[LockInfo, bool]:
    """Lock the preregistration at `path`; returns (lock, whether a new lock was made).

    The file must validate. Locking unchanged content again is a no-op. Changed content is
    refused (`LockError`) unless `reason` says why it is amended; the amendment is audited with
    the hashes before and after, and the earlier lock stays in the lock file's history.
    Call inside a unit of work: the audit event is flushed before the lock file is written, so
    a file that cannot be written rolls the event back.
    """
    prereg = load_preregistration(path)
    existing = read_lock(path)
    if existing is not None and existing.sha256 == prereg.content_hash:
        return existing, False
    if existing is not None and not (reason or "").strip():
        raise LockError(
            f"{path} changed since it was locked at {existing.locked_at.isoformat()} by "
            f"{existing.locked_by} (hash {existing.sha256[:12]} -> {prereg.content_hash[:12]}); "
            "to lock the new content as an amendment, give a reason (--amend REASON)"
        )
    at = (now or datetime.now(UTC)).astimezone(UTC)
    details = {
        "file": Path(path).name,
        "title": prereg.model.title,
        "sha256": prereg.content_hash,
    }
    if existing is not None:
        details |= {"previous_sha256": existing.sha256, "reason": reason}
    event = audit.record(
        session,
        actor,
        AUDIT_ACTION_AMEND if existing is not None else AUDIT_ACTION_LOCK,
        entity_type="preregistration",
        entity_id=prereg.content_hash,
        before=None if existing is None else {"sha256": existing.sha256},
        after={"sha256": prereg.content_hash},
        details=details,
        at=at,
    )
    history = () if existing is None else (*existing.history, _without_history(existing))
    info = LockInfo(
        sha256=prereg.content_hash,
        locked_at=at,
        locked_by=actor,
        audit_event=event.event_hash,
        reason=(reason or "").strip() if existing is not None else "",
        history=history,
    )
    _write_atomically(
        lock_path(path), json.dumps({"file": Path(path).name, **info.to_dict()}, indent=2) + "\n"
    )
    return info, True


def _without_history(info: LockInfo) -> LockInfo:
    return LockInfo(info.sha256, info.locked_at, info.locked_by, info.audit_event, info.reason)


def _write_atomically(target: Path, text: str) -> None:
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)


def verify_lock(path: str | Path) -> LockCheck:
    """Whether the file at `path` still has the content its lock froze."""
    text, problems = read_text(path)
    if text is None:
        raise PreregistrationError(problems)
    current = content_hash(text)
    info = read_lock(path)
    if info is None:
        return LockCheck("unlocked", current, None)
    return LockCheck("locked" if info.sha256 == current else "changed", current, info)


def audit_confirms(session: Session, info: LockInfo) -> bool:
    """Whether the audit log holds the event the lock names, for the same content hash.

    A lock file can be copied or edited; the hash-chained audit log is the record that counts.
    """
    event = session.exec(
        select(AuditEvent).where(AuditEvent.event_hash == info.audit_event)
    ).first()
    return (
        event is not None
        and event.action in (AUDIT_ACTION_LOCK, AUDIT_ACTION_AMEND)
        and event.details.get("sha256") == info.sha256
    )
