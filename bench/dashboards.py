"""How long the dashboards' page callbacks take on a study of N participants x 13 waves,
against two baselines measured in the same run on the same database.

    python bench/dashboards.py --participants 3000

Set-up (not timed): a scratch SQLite database, migrated; the example protocol registered;
N enrolled participants allocated round-robin to its three arms with strata, 13 weekly
occasions each (a seeded mix of completed, missed, partial, cancelled and still-open) and one
invitation per occasion (delivered, sent, failed or undelivered), all written with bulk inserts.

Timed, each `--repeat` times through the Flask test client as a signed-in admin (sign-in, CSRF
header, permission checks, JSON encoding included), median reported:

- `GET /healthz`: the app's cheapest request (baseline 1);
- bare SQL: `SELECT` of every occasion row of the study joined to its participant, fetched
  (baseline 2: what reading the data costs before any work on it);
- each page's main callback (`_dash-update-component`) with no filter, and compliance with
  one wave chosen.

Printed: seconds, and the ratio to each baseline. Ratios compare across machines; the absolute
numbers depend on the hardware.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from study import migrate  # noqa: E402
from study.accounts import create_researcher  # noqa: E402
from study.clock import FakeClock  # noqa: E402
from study.config import Settings  # noqa: E402
from study.db import make_engine  # noqa: E402
from study.models import Allocation, Arm, Occasion, OutboundMessage, Participant  # noqa: E402
from study.protocol import load_protocol  # noqa: E402
from study.protocol.registry import register_protocol  # noqa: E402
from study.web import create_app  # noqa: E402

EXAMPLE = ROOT / "examples/protocols/assistant-flourishing-rct.yaml"
WAVES = 13
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = START + timedelta(weeks=10, days=1)  # waves 1-10 closed, 11-13 still to come
PASSWORD = "benchmark password 1234"
FILTERS = ("arm", "stratum", "wave", "from", "to")


def seed(engine, participants: int, rng: random.Random) -> int:
    """The example study with `participants` x WAVES occasions and messages; its id."""
    with Session(engine) as session:
        study = register_protocol(session, load_protocol(EXAMPLE), actor="bench").study
        session.commit()
        arms = list(session.exec(select(Arm.id).where(Arm.study_id == study.id)))
        version_id = session.exec(text("SELECT max(id) FROM protocol_version")).one()[0]
        study_id = study.id
    with engine.begin() as connection:
        connection.execute(
            Participant.__table__.insert(),
            [
                {
                    "study_id": study_id,
                    "code": f"P-B{n:07d}",
                    "status": "withdrawn" if n % 29 == 0 else "enrolled",
                    "protocol_version_id": version_id,
                    "timezone": "UTC",
                    "language": "en",
                    "preferred_channel": "sms",
                    "strata": {"wellbeing": rng.choice(["low", "high"]), "age_band": "under_35"},
                    "created_at": START - timedelta(days=1),
                    "enrolled_at": START - timedelta(days=n % 5),
                    "withdrawal_reason": "",
                }
                for n in range(participants)
            ],
        )
        ids = [row[0] for row in connection.execute(text("SELECT id FROM participant"))]
        connection.execute(
            Allocation.__table__.insert(),
            [
                {
                    "participant_id": pid,
                    "arm_id": arms[i % len(arms)],
                    "stratum": "",
                    "scheme": "bench",
                    "sequence_number": i,
                    "chosen_by_participant": False,
                    "allocated_at": START,
                }
                for i, pid in enumerate(ids)
            ],
        )
        occasions = []
        for pid in ids:
            for wave in range(1, WAVES + 1):
                due = START + timedelta(weeks=wave - 1)
                closed = due + timedelta(days=2) <= NOW
                status = (
                    rng.choices(["completed", "missed", "cancelled"], [0.75, 0.2, 0.05])[0]
                    if closed
                    else rng.choice(["scheduled", "sent", "partial"])
                )
                occasions.append(
                    {
                        "participant_id": pid,
                        "protocol_version_id": version_id,
                        "schedule_key": f"week{wave:02d}",
                        "wave": wave,
                        "kind": "wave",
                        "instruments": ["who5"],
                        "due_at": due,
                        "closes_at": due + timedelta(days=2),
                        "status": status,
                        "completed_at": due + timedelta(hours=3) if status == "completed" else None,
                    }
                )
        connection.execute(Occasion.__table__.insert(), occasions)
        rows = connection.execute(select(Occasion.id, Occasion.participant_id, Occasion.due_at))
        connection.execute(
            OutboundMessage.__table__.insert(),
            [
                {
                    "participant_id": pid,
                    "occasion_id": oid,
                    "channel": "sms",
                    "purpose": "invitation",
                    "body": "",
                    "send_after": due,
                    "status": rng.choices(
                        ["delivered", "sent", "failed", "undelivered"], [0.85, 0.1, 0.03, 0.02]
                    )[0],
                    "attempts": 1,
                    "lease_owner": "",
                    "provider_message_id": "",
                    "last_error": "",
                    "created_at": due,
                    "attempt_key": "",
                }
                for oid, pid, due in rows
            ],
        )
    return study_id


def signed_in_client(app):
    with Session(app.extensions["flourish"].engine) as session:
        create_researcher(
            session, email="bench@example.org", password=PASSWORD, role="admin", actor="bench"
        )
        session.commit()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"email": "bench@example.org", "password": PASSWORD, "csrf_token": token}
    )
    client.get("/dashboard/")
    return client, client.get_cookie("flourish_dashboard_csrf", path="/dashboard/").value


def callback(client, token, outputs, inputs, state):
    body = {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
        if len(outputs) > 1
        else "{}.{}".format(*outputs[0]),
        "outputs": [{"id": i, "property": p} for i, p in outputs]
        if len(outputs) > 1
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [],
    }
    response = client.post(
        "/dashboard/_dash-update-component",
        data=json.dumps(body),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    if response.status_code != 200:
        raise SystemExit(f"callback failed: {response.status_code} {response.get_data()[:300]}")
    return response


def page_calls(study_id: int) -> dict[str, tuple]:
    """Each page's main callback: (outputs, inputs, state)."""

    def filters(page, **values):
        return [(f"{page}-{name}", "value", values.get(name)) for name in FILTERS]

    study = [("study", "value", study_id)]
    compliance_outputs = [
        ("compliance-heatmap", "figure"),
        ("compliance-rates-chart", "figure"),
        ("compliance-rates", "children"),
        ("compliance-late", "children"),
        ("compliance-failures", "children"),
        ("compliance-occasions", "children"),
    ]
    return {
        "overview": (
            [
                ("overview-enrollment-chart", "figure"),
                ("overview-enrollment", "children"),
                ("overview-consort", "children"),
            ],
            filters("overview"),
            study,
        ),
        "compliance": (compliance_outputs, filters("compliance"), study),
        "compliance, one wave": (compliance_outputs, filters("compliance", wave=["5"]), study),
        "participant timeline": (
            [
                ("timeline-summary", "children"),
                ("timeline-chart", "figure"),
                ("timeline-events", "children"),
            ],
            [("timeline-code", "value", "P-B0000001")],
            study,
        ),
        "message queue": (
            [("queue-messages", "children")],
            [*filters("queue"), ("queue-retried", "children", None)],
            study,
        ),
    }


def median_seconds(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        engine = make_engine(url)
        migrate.upgrade(engine)
        study_id = seed(engine, args.participants, random.Random(8))
        settings = Settings.from_env(
            {},
            env="test",
            instance_path=Path(scratch),
            secret_key="bench-" + "x" * 40,
            database_url=url,
            pii_key=Fernet.generate_key().decode(),
            public_url="https://bench.example.org",
        )
        app = create_app(settings, engine=engine, clock=FakeClock(NOW))
        client, token = signed_in_client(app)

        def bare_sql():
            with engine.connect() as connection:
                connection.execute(
                    text(
                        "SELECT o.id, o.status, o.wave, o.due_at, p.code FROM occasion o "
                        "JOIN participant p ON p.id = o.participant_id WHERE p.study_id = :s"
                    ),
                    {"s": study_id},
                ).fetchall()

        healthz = median_seconds(lambda: client.get("/healthz"), args.repeat * 5)
        sql = median_seconds(bare_sql, args.repeat)
        figures = [("GET /healthz", healthz), ("bare SQL, every occasion", sql)]
        for name, call in page_calls(study_id).items():
            seconds = median_seconds(lambda c=call: callback(client, token, *c), args.repeat)
            figures.append((name, seconds))
        engine.dispose()

    print(f"sqlite, {args.participants} participants x {WAVES} waves")
    print(f"{'phase':<28}  {'median s':>9}  {'x /healthz':>10}  {'x bare SQL':>10}")
    for name, seconds in figures:
        print(f"{name:<28}  {seconds:>9.4f}  {seconds / healthz:>10.3f}  {seconds / sql:>10.3f}")


if __name__ == "__main__":
    main()
