"""The health report: is the database reachable and migrated, and is a scheduler ticking?

Read by `GET /healthz` (load balancers, uptime monitors, the container orchestrator) and usable
from any script. It never contains personal data, connection strings or error messages (they can
carry host names and credentials); details go to the log instead.

Overall status:

- `down`: the database cannot be reached or its schema is not at the newest migration. Nothing
  the server does can work, so the web layer answers 503.
- `degraded`: the database is fine but no scheduler has beaten recently (`stale`) or ever
  (`missing`): pages work, but invitations and reminders are not going out.
- `ok`: both are fine.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from . import migrate
from .models import ServiceHeartbeat

log = logging.getLogger(__name__)

SCHEDULER_HEARTBEAT = "scheduler"


def health_report(
    engine: Engine,
    now: datetime,
    stale_after: timedelta | float,
    *,
    heartbeat_name: str = SCHEDULER_HEARTBEAT,
) -> dict[str, Any]:
    """Check the database and the scheduler's heartbeat as of `now`.

    `stale_after` (a timedelta or seconds) is how old the newest heartbeat may be before the
    scheduler counts as stale; use a few tick intervals (`settings.scheduler_stale_seconds`).
    Returns a JSON-ready dict with `status`, `checked_at`, `database` and `scheduler`.
    """
    if not isinstance(stale_after, timedelta):
        stale_after = timedelta(seconds=stale_after)
    database = _database(engine)
    if database["status"] == "ok":
        scheduler = _scheduler(engine, now, stale_after, heartbeat_name)
    else:
        # Without a migrated database there is no heartbeat table to read.
        scheduler = {"status": "unknown", "stale_after_seconds": stale_after.total_seconds()}

    if database["status"] != "ok":
        status = "down"
    elif scheduler["status"] != "ok":
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "checked_at": now.isoformat(),
        "database": database,
        "scheduler": scheduler,
    }


def _database(engine: Engine) -> dict[str, Any]:
    report: dict[str, Any] = {"dialect": engine.dialect.name, "head": migrate.head_revision()}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = migrate.current_revision(engine)
    except Exception as exc:
        log.warning("health check: database unreachable", exc_info=True)
        report.update(status="unreachable", reachable=False, error=type(exc).__name__)
        return report
    report.update(reachable=True, revision=revision)
    if revision is None:
        report["status"] = "not migrated"
    elif revision != report["head"]:
        report["status"] = "wrong revision"
    else:
        report["status"] = "ok"
    return report


def _scheduler(engine: Engine, now: datetime, stale_after: timedelta, name: str) -> dict[str, Any]:
    report: dict[str, Any] = {"stale_after_seconds": stale_after.total_seconds()}
    with engine.connect() as connection:
        row = connection.execute(
            select(ServiceHeartbeat.beat_at, ServiceHeartbeat.started_at).where(
                ServiceHeartbeat.name == name
            )
        ).first()
    if row is None:
        report["status"] = "missing"
        return report
    age = now - row.beat_at
    report.update(
        beat_at=row.beat_at.isoformat(),
        started_at=row.started_at.isoformat(),
        # A negative age means the scheduler's host clock runs ahead of ours: shown, not hidden.
        age_seconds=round(age.total_seconds(), 3),
        status="ok" if age <= stale_after else "stale",
    )
    return report
