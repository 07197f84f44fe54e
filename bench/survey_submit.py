"""Web survey submissions per second under concurrency on gunicorn, against bare endpoints of
the same app, served by the same gunicorn in the same run.

    python bench/survey_submit.py --participants 500 --concurrency 8
    python bench/survey_submit.py --database-url postgresql://user:pw@host/postgres
    python bench/survey_submit.py --quick          # a few seconds; what the tests run

Phases (only the last two are timed):

1. set-up: a fresh, migrated scratch database (a temporary SQLite file, or with
   `--database-url` a PostgreSQL database created next to that server URL and dropped
   afterwards); a small study (the example protocol with a schedule of WHO-5 only: a baseline
   due at enrollment, open 7 days, then weekly waves), N + C participants enrolled a minute ago,
   each with a signed consent and their schedule materialised, and one signed survey link per
   baseline occasion (`study.schedule.links`);
2. gunicorn: `deploy/gunicorn.conf.py` (the production configuration, access log included)
   serving the app factory `study.web:create_app()` on a free port of 127.0.0.1, with
   `--workers` processes of `--threads` threads; C warm-up submissions (one per client);
3. bare: C client threads send as many requests as the submissions below needed, to
   `GET /static/flourish.css` (Flask's static route: routing, headers, a file) and to
   `GET /healthz` (the liveness probe: one database round trip and the heartbeat read);
4. submit: C client threads, each a fresh browser per participant (no cookies), take the links
   one by one: GET the survey page, POST the five answers with the page's CSRF token, follow
   the 303 to the thank-you page. A submission counts only when the POST is acknowledged with
   the redirect and the thank-you page is shown. Afterwards every acknowledged occasion is
   checked in the database (occasion completed, a complete response with five items).

Figures: submissions per second and HTTP requests per second during the submit phase, each
bare endpoint's requests per second, the ratios, and p50/p95 latencies. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from sqlmodel import Session, col, func, select  # noqa: E402

from bench.dispatch import Figure, ScratchDatabase  # noqa: E402
from consent import sign  # noqa: E402
from study import migrate  # noqa: E402
from study.config import Settings  # noqa: E402
from study.db import make_engine  # noqa: E402
from study.models import ItemResponse, Occasion, Participant, Response  # noqa: E402
from study.pii import PiiVault  # noqa: E402
from study.protocol import parse_protocol  # noqa: E402
from study.protocol.registry import register_protocol  # noqa: E402
from study.schedule import materialise, schedule_seed  # noqa: E402
from study.schedule.links import survey_token  # noqa: E402

EXAMPLE = ROOT / "examples/protocols/assistant-flourishing-rct.yaml"
GUNICORN_CONF = ROOT / "deploy/gunicorn.conf.py"
# Only WHO-5, whose wording ships with Flourish: UCLA-3 and the SDWISE items have none, and the
# survey pages refuse an occasion whose wording is missing.
SCHEDULE = """schedule:
  baseline:
    kind: baseline
    at: enrollment
    instruments: [who5]
    window: 7d
    reminders: [24h]

  weekly:
    kind: wave
    instruments: [who5]
    every: 7d
    start: 7d
    count: 4
    local_time: "19:00"
    window: 48h
    reminders: [24h]

"""
WHO5_ITEMS = tuple(f"who5.who5_{n}" for n in range(1, 6))
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
THANKS = "Your answers have been sent."
STATIC_PATH = "/static/flourish.css"
HEALTH_PATH = "/healthz"
# Importing the app in every worker takes a while on a loaded machine.
STARTUP_SECONDS = 180
QUICK = {"participants": 12, "concurrency": 3, "workers": 2, "threads": 2}


@dataclass
class Timed(Figure):
    """A timed phase (count, seconds, rate: as in dispatch.py) with each one's latency."""

    latencies: list[float] = field(default_factory=list)

    def percentile(self, p: int) -> float:
        """The p-th percentile latency in milliseconds."""
        if len(self.latencies) < 2:
            return 1000 * (self.latencies[0] if self.latencies else 0.0)
        return 1000 * statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


class BenchFailure(RuntimeError):
    """A request was not answered as a participant's browser expects: the figures would lie."""


# --- set-up (not timed) ---------------------------------------------------------------------------


def small_protocol():
    """The example protocol with a WHO-5-only schedule (parsed next to the original file)."""
    text = EXAMPLE.read_text()
    start, end = text.index("\nschedule:\n") + 1, text.index("\nchannels:\n") + 1
    return parse_protocol(
        text[:start] + SCHEDULE + text[end:], str(EXAMPLE), base_dir=EXAMPLE.parent
    )


def enroll(engine, settings: Settings, count: int, now: datetime) -> list[int]:
    """`count` enrolled participants with a signed consent and a materialised schedule; the ids
    of their baseline occasions, open now."""
    protocol = small_protocol()
    vault = PiiVault(settings.pii_key)
    with Session(engine, expire_on_commit=False) as session:
        registration = register_protocol(session, protocol, actor="bench")
        session.commit()
    seed = schedule_seed(settings.secret_key, registration.study.slug)
    baselines = []
    for start in range(0, count, 200):
        with Session(engine, expire_on_commit=False) as session:
            for number in range(start, min(count, start + 200)):
                participant = Participant(
                    study_id=registration.study.id,
                    code=f"P-S{number:07d}",
                    status="consented",
                    protocol_version_id=registration.version.id,
                    timezone="Europe/London",
                    preferred_channel="web",  # links come from the bench, not the outbox
                    created_at=now,
                )
                session.add(participant)
                session.flush()
                sign(
                    session,
                    vault,
                    participant=participant,
                    protocol=protocol,
                    signed_name=f"Bench Participant {number}",
                    options={},
                    now=now,
                    actor=f"participant:{participant.code}",
                )
                participant.status, participant.enrolled_at = "enrolled", now
                written = materialise(
                    session, participant, protocol, registration.version.id, now=now, seed=seed
                )
                baselines += [o.id for o in written if o.schedule_key == "baseline"]
            session.commit()
    return baselines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(environ: dict[str, str], workdir: Path, *, workers: int, threads: int):
    """gunicorn serving the app factory on a free local port; yields the base URL."""
    port = free_port()
    env = {
        **environ,
        "FLOURISH_BIND": f"127.0.0.1:{port}",
        "FLOURISH_WEB_WORKERS": str(workers),
        "FLOURISH_WEB_THREADS": str(threads),
        "FLOURISH_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    log_path = workdir / "gunicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "study.web:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(server, base_url)
            yield base_url
        except BaseException:
            # The server's side of whatever went wrong (a traceback, a killed worker).
            sys.stderr.write(f"gunicorn log (last lines):\n{log_path.read_text()[-3000:]}\n")
            raise
        finally:
            server.send_signal(signal.SIGTERM)  # the master stops its workers gracefully
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _wait_until_up(server: subprocess.Popen, base_url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchFailure(f"gunicorn exited with status {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base_url + HEALTH_PATH, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchFailure(f"gunicorn did not answer within {STARTUP_SECONDS} s")


# --- the clients ----------------------------------------------------------------------------------


def submit(client: httpx.Client, token: str, answers: dict[str, str]) -> float:
    """One participant's whole submission, as a browser makes it; returns the POST's latency."""
    client.cookies.clear()  # a fresh browser: its own session cookie and CSRF token
    path = f"/s/{token}"
    page = client.get(path)
    if page.status_code != 200 or WHO5_ITEMS[0] not in page.text:
        raise BenchFailure(f"GET {path}: {page.status_code} {page.text[:300]!r}")
    csrf = CSRF.search(page.text)
    if csrf is None:
        raise BenchFailure(f"GET {path}: the page has no CSRF token")
    started = time.perf_counter()
    posted = client.post(path, data={"csrf_token": csrf.group(1), "page": "1", **answers})
    latency = time.perf_counter() - started
    if posted.status_code != 303 or posted.headers.get("location") != path:
        raise BenchFailure(f"POST {path}: {posted.status_code} {posted.text[:300]!r}")
    thanks = client.get(path)
    if thanks.status_code != 200 or THANKS not in thanks.text:
        raise BenchFailure(f"GET {path} after submitting: {thanks.status_code}, no thank-you")
    return latency


def run_clients(
    base_url: str, concurrency: int, work: Callable[[httpx.Client, int], None]
) -> float:
    """`work(client, n)` in `concurrency` threads, each with its own keep-alive client, until
    every thread returns; re-raises the first failure. Returns the elapsed seconds."""
    failures: list[BaseException] = []

    def client_thread(number: int) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                work(client, number)
        except BaseException as exc:  # reported in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return elapsed


def submissions(
    base_url: str, tokens: list[str], concurrency: int, duration: float = 0
) -> tuple[Timed, Timed]:
    """Every link submitted once (or as many as `duration` seconds allow): the submissions
    figure (latency: GET page + POST + thank-you) and the POST requests alone."""
    queue, lock = iter(tokens), threading.Lock()
    done: list[tuple[float, float]] = []
    deadline = time.perf_counter() + duration if duration else float("inf")

    def work(client: httpx.Client, number: int) -> None:
        answer = random.Random(number)
        while time.perf_counter() < deadline:
            with lock:
                token = next(queue, None)
            if token is None:
                return
            answers = {item: str(answer.randint(0, 5)) for item in WHO5_ITEMS}
            started = time.perf_counter()
            post = submit(client, token, answers)
            with lock:
                done.append((time.perf_counter() - started, post))

    seconds = run_clients(base_url, concurrency, work)
    whole = Timed("survey submit", "submissions", len(done), seconds, [d[0] for d in done])
    posts = Timed("survey POST alone", "requests", len(done), seconds, [d[1] for d in done])
    return whole, posts


def bare(base_url: str, path: str, count: int, concurrency: int) -> Timed:
    """`count` GETs of `path` from `concurrency` clients."""
    remaining, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []

    def work(client: httpx.Client, _number: int) -> None:
        while True:
            with lock:
                if next(remaining) >= count:
                    return
            started = time.perf_counter()
            response = client.get(path)
            latency = time.perf_counter() - started
            if response.status_code != 200:
                raise BenchFailure(f"GET {path}: {response.status_code} {response.text[:300]!r}")
            with lock:
                latencies.append(latency)

    seconds = run_clients(base_url, concurrency, work)
    return Timed(f"bare GET {path}", "requests", len(latencies), seconds, latencies)


def verify(engine, occasion_ids: list[int]) -> int:
    """How many of these occasions are completed with a complete five-item WHO-5 response."""
    with Session(engine) as session:
        items = (
            select(ItemResponse.response_id, func.count().label("n"))
            .group_by(col(ItemResponse.response_id))
            .subquery()
        )
        rows = session.exec(
            select(func.count())
            .select_from(Occasion)
            .join(Response, col(Response.occasion_id) == col(Occasion.id))
            .join(items, items.c.response_id == col(Response.id))
            .where(
                col(Occasion.id).in_(occasion_ids),
                Occasion.status == "completed",
                Response.status == "complete",
                Response.instrument_id == "who5",
                items.c.n == len(WHO5_ITEMS),
            )
        ).one()
    return rows


# --- the run --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[dict[str, Timed], str]:
    """One complete run; the figures by phase and a line saying what was verified."""
    with tempfile.TemporaryDirectory(prefix="flourish-bench-") as tmp:
        workdir = Path(tmp)
        if args.database_url:
            # dispatch.py's scratch databases are created next to the server in this variable.
            os.environ["FLOURISH_BENCH_POSTGRES_URL"] = args.database_url
        scratch = ScratchDatabase("postgresql" if args.database_url else "sqlite", workdir)
        engine = make_engine(scratch.url)
        try:
            environ = {
                **os.environ,
                "FLOURISH_ENV": "production",
                "FLOURISH_INSTANCE_PATH": str(workdir / "instance"),
                "FLOURISH_DATABASE_URL": scratch.url,
                "FLOURISH_SECRET_KEY": secrets.token_urlsafe(32),
                "FLOURISH_PII_KEY": Fernet.generate_key().decode(),
            }
            settings = Settings.from_env(environ)
            migrate.upgrade(engine)
            now = datetime.now(UTC) - timedelta(minutes=1)
            occasions = enroll(engine, settings, args.participants + args.concurrency, now)
            tokens = [survey_token(settings, occasion) for occasion in occasions]
            warm, timed = tokens[: args.concurrency], tokens[args.concurrency :]
            with gunicorn(environ, workdir, workers=args.workers, threads=args.threads) as url:
                submissions(url, warm, args.concurrency)  # every worker has loaded the protocol
                bare(url, STATIC_PATH, args.concurrency, args.concurrency)
                whole, posts = submissions(url, timed, args.concurrency, args.duration)
                requests = 3 * whole.count  # page, POST, thank-you
                static = bare(url, STATIC_PATH, requests, args.concurrency)
                health = bare(url, HEALTH_PATH, requests, args.concurrency)
            acknowledged = len(warm) + whole.count
            completed = verify(engine, occasions)
            if completed != acknowledged:
                raise BenchFailure(
                    f"{acknowledged} submissions were acknowledged but {completed} are complete "
                    "in the database"
                )
        finally:
            engine.dispose()
            scratch.drop()
    http = Timed("survey HTTP requests", "requests", requests, whole.seconds)
    figures = {"static": static, "health": health, "submit": whole, "post": posts, "http": http}
    note = (
        f"verified: {acknowledged} of {acknowledged} acknowledged submissions (warm-up "
        f"included) are completed occasions with a complete 5-item WHO-5 response"
    )
    return figures, note


def table(figures: dict[str, Timed], heading: str) -> str:
    """The figures as an aligned table, with ratios to both bare endpoints' rates."""
    static, health = figures["static"].rate, figures["health"].rate
    header = (
        "phase",
        "count",
        "seconds",
        "per second",
        "p50 ms",
        "p95 ms",
        "÷ static",
        "÷ healthz",
    )
    lines = [header]
    for key in ("static", "health", "submit", "http", "post"):
        figure = figures[key]
        # The POSTs' rate is the submissions'; the requests of a submission have no one latency.
        rated, timed = key != "post", key != "http"
        lines.append(
            (
                figure.phase,
                f"{figure.count:,} {figure.unit}",
                f"{figure.seconds:.2f}",
                f"{figure.rate:,.1f}" if rated else "-",
                f"{figure.percentile(50):.1f}" if timed else "-",
                f"{figure.percentile(95):.1f}" if timed else "-",
                f"{figure.rate / static:.3f}" if rated else "-",
                f"{figure.rate / health:.3f}" if rated else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [heading]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=500, help="submissions timed")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--duration", type=float, default=0, help="stop submitting after this many seconds"
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL server URL whose role may create databases (default: SQLite file)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (for the tests)")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    if min(args.participants, args.concurrency, args.workers, args.threads) < 1:
        parser.error("--participants, --concurrency, --workers and --threads must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    try:
        figures, note = run(args)
    except BenchFailure as exc:
        sys.stderr.write(f"survey_submit: {exc}\n")
        return 1
    backend = "postgresql" if args.database_url else "sqlite"
    heading = (
        f"{backend}, gunicorn {args.workers} workers x {args.threads} threads, "
        f"{args.concurrency} clients, {figures['submit'].count:,} submissions"
    )
    sys.stdout.write(table(figures, heading) + note + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
