"""Invitations planned and dispatched per second, against the plain insert rate of the same
database, measured in one run on a scratch database.

    python bench/dispatch.py --participants 10000 --backend sqlite
    FLOURISH_BENCH_POSTGRES_URL=postgresql://user:pw@host/postgres \\
        python bench/dispatch.py --participants 10000 --backend postgresql

Phases (only the last three are timed):

1. set-up: a fresh, migrated scratch database (a temporary SQLite file, or a PostgreSQL
   database created next to FLOURISH_BENCH_POSTGRES_URL and dropped afterwards), the example
   protocol registered, N enrolled participants in Europe/London with a signed consent and an
   encrypted SMS contact, inserted in bulk;
2. plan: `study.schedule.materialise` for every participant, 500 to a transaction, as
   enrollment and the rolling horizon do it (locks, checks, occasions, outbox rows, an audit
   event each); figure: occasions written per second;
3. dispatch: `dispatch_due` until nothing is due, with the console channel and rate limits
   disabled, at the instant the baseline occasions fall due (so N invitations are due);
   figure: messages sent per second (claim, re-check, render, send, record for each);
4. plain INSERT: as many rows as the plan wrote to the outbox, shaped like `outbound_message`,
   into a bare table without indexes or foreign keys: in transactions of 1,000 rows (`bulk`,
   the database's ceiling) and one row per transaction (`per-row`, one commit each, as a
   naive outbox would).

Figures are printed with their ratio to both insert rates, which is what compares across
machines; the absolute numbers depend on the hardware. See bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from consent import sign  # noqa: E402
from study import migrate  # noqa: E402
from study.channels import ConsoleChannel  # noqa: E402
from study.config import Settings  # noqa: E402
from study.db import make_engine  # noqa: E402
from study.models import Consent, ContactPoint, Participant  # noqa: E402
from study.pii import PiiVault  # noqa: E402
from study.protocol import load_protocol  # noqa: E402
from study.protocol.registry import register_protocol  # noqa: E402
from study.schedule import materialise, schedule_seed  # noqa: E402
from study.schedule.dispatch import DispatchPolicy, dispatch_due  # noqa: E402

EXAMPLE = ROOT / "examples/protocols/assistant-flourishing-rct.yaml"
# Noon in London on a Monday outside DST changes: no quiet hours in the way.
ENROLLED_AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PLAN_BATCH = 500
DISPATCH_BATCH = 500
INSERT_BATCH = 1000


@dataclass
class Figure:
    """One measured phase: how many things in how many seconds."""

    phase: str
    unit: str
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


# --- scratch databases ----------------------------------------------------------------------------


class ScratchDatabase:
    """A fresh database for one run, removed afterwards."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.admin = None
        if backend == "sqlite":
            self.url = f"sqlite:///{workdir / 'bench.sqlite3'}"
            return
        admin_url = os.environ.get("FLOURISH_BENCH_POSTGRES_URL", "")
        if not admin_url:
            raise SystemExit(
                "--backend postgresql needs FLOURISH_BENCH_POSTGRES_URL: a role that may create "
                "databases, e.g. postgresql://flourish:flourish@127.0.0.1:5432/postgres"
            )
        self.admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"flourish_bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        url = make_url(self.admin.url.render_as_string(hide_password=False))
        self.url = url.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


# --- set-up (not timed) ---------------------------------------------------------------------------


def enroll_participants(engine, settings: Settings, protocol, registration, count: int) -> None:
    """N enrolled participants with an active consent and an SMS contact, inserted in bulk
    (enrollment itself is not what this benchmark measures)."""
    vault = PiiVault(settings.pii_key)
    study_id, version_id = registration.study.id, registration.version.id
    with Session(engine, expire_on_commit=False) as session:
        # One real signature, so the consent rows carry the document's true version and hash.
        template = Participant(
            study_id=study_id,
            code="P-BENCH-TEMPLATE",
            status="consented",  # never enrolled: neither planned nor sent to
            protocol_version_id=version_id,
        )
        session.add(template)
        session.flush()
        signed = sign(
            session,
            vault,
            participant=template,
            protocol=protocol,
            signed_name="Bench Template",
            options={},
            now=ENROLLED_AT,
            actor="bench",
        )
        session.commit()
        consent_values = {
            "document_version": signed.document_version,
            "document_hash": signed.document_hash,
            "options": signed.options,
            "signature_encrypted": signed.signature_encrypted,
            "signed_at": ENROLLED_AT,
        }
    for start in range(0, count, INSERT_BATCH):
        numbers = range(start, min(count, start + INSERT_BATCH))
        with Session(engine) as session:
            people = [
                Participant(
                    study_id=study_id,
                    code=f"P-B{number:07d}",
                    status="enrolled",
                    protocol_version_id=version_id,
                    timezone="Europe/London",
                    preferred_channel="sms",
                    enrolled_at=ENROLLED_AT,
                    created_at=ENROLLED_AT,
                )
                for number in numbers
            ]
            session.add_all(people)
            session.flush()
            for participant, number in zip(people, numbers, strict=True):
                phone = f"+447700{number:06d}"
                session.add(Consent(participant_id=participant.id, **consent_values))
                session.add(
                    ContactPoint(
                        participant_id=participant.id,
                        kind="sms",
                        value_encrypted=vault.encrypt(phone),
                        lookup_hash=vault.lookup_hash("sms", phone),
                    )
                )
            session.commit()


# --- timed phases ---------------------------------------------------------------------------------


def plan(engine, protocol, registration, seed: str) -> tuple[Figure, int]:
    """Materialise every enrolled participant's schedule; (occasions figure, messages written)."""
    ids = []
    with Session(engine) as session:
        ids = list(
            session.exec(
                select(Participant.id)
                .where(Participant.status == "enrolled")
                .order_by(col(Participant.id))
            )
        )
    occasions = messages = 0
    started = time.perf_counter()
    for start in range(0, len(ids), PLAN_BATCH):
        chunk = ids[start : start + PLAN_BATCH]
        with Session(engine, expire_on_commit=False) as session:
            people = session.exec(select(Participant).where(col(Participant.id).in_(chunk))).all()
            for participant in people:
                written = materialise(
                    session,
                    participant,
                    protocol,
                    registration.version.id,
                    now=ENROLLED_AT,
                    seed=seed,
                )
                occasions += len(written)
            session.commit()
    seconds = time.perf_counter() - started
    from study.models import OutboundMessage  # the count, outside the timed part

    with Session(engine) as session:
        messages = len(session.exec(select(OutboundMessage.id)).all())
    return Figure("plan (materialise)", "occasions", occasions, seconds), messages


def dispatch(engine, settings: Settings) -> Figure:
    """Send everything due at the enrollment instant through the console channel."""
    channels = {"sms": ConsoleChannel("sms"), "email": ConsoleChannel("email")}
    policy = DispatchPolicy(rates={})
    sent = 0
    started = time.perf_counter()
    while True:
        report = dispatch_due(
            engine,
            channels,
            settings,
            now=ENROLLED_AT,
            owner="bench:1",
            batch=DISPATCH_BATCH,
            policy=policy,
        )
        sent += report.sent
        if report.claimed == 0:
            break
    seconds = time.perf_counter() - started
    return Figure("dispatch (dispatch_due)", "messages", sent, seconds)


def bare_table(metadata: MetaData, name: str) -> Table:
    """A table shaped like `outbound_message`: the same columns, no indexes or foreign keys."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("participant_id", Integer, nullable=False),
        Column("occasion_id", Integer),
        Column("channel", String(16), nullable=False),
        Column("purpose", String(32), nullable=False),
        Column("body", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("send_after", DateTime, nullable=False),
        Column("expires_at", DateTime),
        Column("attempts", Integer, nullable=False),
        Column("lease_owner", String(100), nullable=False),
        Column("lease_expires_at", DateTime),
        Column("provider_message_id", String(64), nullable=False),
        Column("last_error", String(500), nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("sent_at", DateTime),
        Column("status_updated_at", DateTime),
        Column("attempt_key", String(32), nullable=False),
        Column("attempt_started_at", DateTime),
    )


def _rows(count: int):
    due = ENROLLED_AT.replace(tzinfo=None)
    for number in range(count):
        yield {
            "participant_id": number + 1,
            "occasion_id": number + 1,
            "channel": "sms",
            "purpose": "invitation",
            "body": "",
            "status": "pending",
            "send_after": due,
            "expires_at": due + timedelta(days=2),
            "attempts": 0,
            "lease_owner": "",
            "lease_expires_at": None,
            "provider_message_id": "",
            "last_error": "",
            "created_at": due,
            "sent_at": None,
            "status_updated_at": None,
            "attempt_key": secrets.token_hex(8),
            "attempt_started_at": None,
        }


def plain_inserts(engine, count: int) -> tuple[Figure, Figure]:
    """Bare INSERTs of `count` outbox-sized rows: bulk (1,000 a transaction) and per row."""
    metadata = MetaData()
    bulk_table = bare_table(metadata, "bench_insert_bulk")
    row_table = bare_table(metadata, "bench_insert_row")
    metadata.create_all(engine)
    rows = list(_rows(count))
    started = time.perf_counter()
    for start in range(0, count, INSERT_BATCH):
        with engine.begin() as connection:
            connection.execute(bulk_table.insert(), rows[start : start + INSERT_BATCH])
    bulk = Figure("plain INSERT, 1,000 a transaction", "rows", count, time.perf_counter() - started)
    statement = row_table.insert()
    started = time.perf_counter()
    with engine.connect() as connection:
        for row in rows:
            with connection.begin():
                connection.execute(statement, row)
    per_row = Figure(
        "plain INSERT, one a transaction", "rows", count, time.perf_counter() - started
    )
    metadata.drop_all(engine)
    return bulk, per_row


# --- the run --------------------------------------------------------------------------------------


def run(participants: int, backend: str) -> dict[str, Figure]:
    """One complete run on a scratch database; the figures by phase."""
    with tempfile.TemporaryDirectory(prefix="flourish-bench-") as workdir:
        scratch = ScratchDatabase(backend, Path(workdir))
        engine = make_engine(scratch.url)
        try:
            settings = Settings.from_env(
                {},
                env="test",
                instance_path=Path(workdir) / "instance",
                secret_key=secrets.token_urlsafe(32),
                pii_key=Fernet.generate_key().decode(),
                public_url="https://bench.example.org",
                database_url=scratch.url,
                sms_per_second=0.0,
                email_per_second=0.0,
            )
            migrate.upgrade(engine)
            protocol = load_protocol(EXAMPLE)
            with Session(engine, expire_on_commit=False) as session:
                registration = register_protocol(session, protocol, actor="bench")
                session.commit()
            enroll_participants(engine, settings, protocol, registration, participants)
            seed = schedule_seed(settings.secret_key, registration.study.slug)
            planned, messages = plan(engine, protocol, registration, seed)
            sent = dispatch(engine, settings)
            bulk, per_row = plain_inserts(engine, messages)
        finally:
            engine.dispose()
            scratch.drop()
    return {"plan": planned, "dispatch": sent, "bulk": bulk, "per_row": per_row}


def table(figures: dict[str, Figure], *, participants: int, backend: str) -> str:
    """The figures as a small aligned table, with ratios to both insert rates."""
    bulk, per_row = figures["bulk"].rate, figures["per_row"].rate
    header = ("phase", "count", "seconds", "per second", "÷ bulk INSERT", "÷ per-row INSERT")
    lines = [header]
    for key in ("bulk", "per_row", "plan", "dispatch"):
        figure = figures[key]
        lines.append(
            (
                figure.phase,
                f"{figure.count:,} {figure.unit}",
                f"{figure.seconds:.2f}",
                f"{figure.rate:,.0f}",
                f"{figure.rate / bulk:.3f}",
                f"{figure.rate / per_row:.3f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"{backend}, {participants:,} participants"]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    if args.participants < 1:
        parser.error("--participants must be at least 1")
    # The console channel logs every message at INFO; a benchmark wants only its table.
    logging.basicConfig(level=logging.WARNING)
    figures = run(args.participants, args.backend)
    sys.stdout.write(table(figures, participants=args.participants, backend=args.backend))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
