"""Container health checks: `python deploy/healthcheck.py web|scheduler`; exit 0 when healthy.

- `web`: this container's `GET /healthz` answers and the database is usable (`ok` or
  `degraded`: a missing scheduler is no reason to take web servers out of rotation).
- `scheduler`: the shared scheduler heartbeat is recent (FLOURISH_SCHEDULER_STALE_SECONDS).
  Several schedulers share one heartbeat, so this says that *a* scheduler is ticking.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from datetime import UTC, datetime


def web() -> bool:
    port = os.environ.get("FLOURISH_BIND", "0.0.0.0:8000").rsplit(":", 1)[-1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return json.load(answer).get("status") in ("ok", "degraded")
    except (OSError, ValueError):
        return False


def scheduler() -> bool:
    from study.config import Settings
    from study.db import make_engine
    from study.health import health_report

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        report = health_report(engine, datetime.now(UTC), settings.scheduler_stale_seconds)
    finally:
        engine.dispose()
    return report["scheduler"]["status"] == "ok"


if __name__ == "__main__":
    checks = {"web": web, "scheduler": scheduler}
    if len(sys.argv) != 2 or sys.argv[1] not in checks:
        sys.exit("usage: healthcheck.py web|scheduler")
    sys.exit(0 if checks[sys.argv[1]]() else 1)
