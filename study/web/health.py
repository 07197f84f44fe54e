"""`GET /healthz`: the health report as JSON, for load balancers and uptime monitors.

No login: monitors have no accounts, and the report holds no personal data. Status codes:
200 when the report is `ok` or `degraded`; 503 when it is `down` (database unreachable or not
migrated), and also when `degraded` if the caller asks `?strict=1` (a monitor that should page
someone when invitations stop going out).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..health import health_report
from .context import services

bp = Blueprint("health", __name__)

_TRUTHY = ("1", "true", "yes")


@bp.get("/healthz")
def healthz():
    """Report database and scheduler health; see the module docstring for status codes."""
    svc = services()
    report = health_report(svc.engine, svc.clock.now(), svc.settings.scheduler_stale_seconds)
    strict = request.args.get("strict", "").lower() in _TRUTHY
    healthy = report["status"] == "ok" or (report["status"] == "degraded" and not strict)
    response = jsonify(report)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
