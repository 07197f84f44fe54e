"""The append-only audit log: who did what, when, with hashes of the state before and after.

Each event's hash covers its content and the previous event's hash, so `verify_chain` detects
any edit, removal or reordering; database triggers refuse UPDATE and DELETE in the first place.
Writers serialise on the chain's tail (an advisory lock on PostgreSQL, SQLite has one writer).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from .models import AuditEvent, utcnow

# An arbitrary constant naming the audit chain's lock among PostgreSQL advisory locks.
_CHAIN_LOCK = 0x466C6F75  # "Flou"

EXPORT_FIELDS = (
    "id",
    "occurred_at",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "before_hash",
    "after_hash",
    "details",
    "prev_hash",
    "event_hash",
)


def state_hash(state: Any) -> str:
    """SHA-256 of a canonical JSON rendering of `state` ('' for None: nothing existed)."""
    if state is None:
        return ""
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    entity_type: str = "",
    entity_id: str | int = "",
    before: Any = None,
    after: Any = None,
    details: dict | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction, so it commits or rolls back with the change.

    `actor` names who acted (`researcher:alice@example.org`, `participant:P-7K3M9Q`,
    `system:scheduler`, `cli:<os user>`); `before` and `after` are plain data describing the
    entity; only their hashes are kept, so the log never becomes a copy of personal data.
    """
    if at is not None and at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r} given where a UTC instant is required")
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    prev = session.exec(
        select(AuditEvent.event_hash).order_by(col(AuditEvent.id).desc()).limit(1)
    ).first()
    event = AuditEvent(
        # In UTC, so the hash computed now matches the one recomputed from the stored row.
        occurred_at=(at or utcnow()).astimezone(UTC),
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before_hash=state_hash(before),
        after_hash=state_hash(after),
        details=details or {},
        prev_hash=prev or "",
        event_hash="",
    )
    event.event_hash = _event_hash(event)
    session.add(event)
    session.flush()
    return event


def _event_hash(event: AuditEvent) -> str:
    """The hash covers every field but the row id and the hash itself."""
    payload = _as_row(event)
    del payload["id"], payload["event_hash"]
    return state_hash(payload)


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    message: str


def verify_chain(events: Iterable[AuditEvent], *, start: str = "") -> list[ChainProblem]:
    """Check that every event's hash is intact and links to the one before it.

    `start` is the hash the first event must link to: '' for a whole log, the `prev_hash` of its
    first row for an export that begins part-way (`--since`).
    """
    problems: list[ChainProblem] = []
    previous = start
    for event in events:
        if event.prev_hash != previous:
            problems.append(ChainProblem(event.id, "does not link to the event before it"))
        if _event_hash(event) != event.event_hash:
            problems.append(ChainProblem(event.id, "content does not match its hash"))
        previous = event.event_hash
    return problems


def events(session: Session, *, since: datetime | None = None) -> Iterator[AuditEvent]:
    """The log's events in the order they were appended, optionally from `since` on."""
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    yield from session.exec(query)


def export(session: Session, fmt: str = "jsonl", *, since: datetime | None = None) -> str:
    """The log as JSON Lines or CSV, in order, with the hashes needed to re-verify it."""
    rows = [_as_row(event) for event in events(session, since=since)]
    if fmt == "jsonl":
        return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
        return buffer.getvalue()
    raise ValueError(f"unknown audit export format {fmt!r}; use jsonl or csv")


def _as_row(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "before_hash": event.before_hash,
        "after_hash": event.after_hash,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "event_hash": event.event_hash,
    }


def parse_export(content: str, fmt: str = "jsonl") -> list[AuditEvent]:
    """Read an export back into (unsaved) events, so that `verify_chain` can check a copy of the
    log held outside the database, e.g. by an ethics board."""
    if fmt == "jsonl":
        rows = [json.loads(line) for line in content.splitlines() if line.strip()]
    elif fmt == "csv":
        rows = [
            {**row, "details": json.loads(row["details"] or "{}")}
            for row in csv.DictReader(io.StringIO(content))
        ]
    else:
        raise ValueError(f"unknown audit export format {fmt!r}; use jsonl or csv")
    missing = [name for name in EXPORT_FIELDS if rows and name not in rows[0]]
    if missing:
        raise ValueError(f"not an audit export: missing column(s) {', '.join(missing)}")
    return [
        AuditEvent(
            **{
                **row,
                "id": int(row["id"]),
                "occurred_at": datetime.fromisoformat(row["occurred_at"]),
            }
        )
        for row in rows
    ]
