"""The benchmarks run, at a tiny size, on SQLite and PostgreSQL: CI proves they still work.

Nothing here asserts a timing (a shared CI machine makes any such assertion flaky); only that
each benchmark completes, does the work it claims to measure and prints its table of ratios.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).parents[2]
PARTICIPANTS = 12


def run_benchmark(script: str, *args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def rows(output: str) -> dict[str, list[str]]:
    """The table's rows by phase (columns are separated by two or more spaces)."""
    import re

    lines = output.splitlines()
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line) for line in lines[2:])}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_dispatch_benchmark_plans_and_sends_for_every_participant(backend):
    env = {"FLOURISH_BENCH_POSTGRES_URL": POSTGRES_URL} if backend == "postgresql" else {}

    output = run_benchmark(
        "dispatch.py", "--participants", str(PARTICIPANTS), "--backend", backend, env=env
    )

    assert output.splitlines()[0] == f"{backend}, {PARTICIPANTS} participants"
    table = rows(output)
    assert set(table) == {
        "plain INSERT, 1,000 a transaction",
        "plain INSERT, one a transaction",
        "plan (materialise)",
        "dispatch (dispatch_due)",
    }
    # Every participant's baseline invitation is due at enrollment, and each is sent once.
    assert table["dispatch (dispatch_due)"][1] == f"{PARTICIPANTS} messages"
    planned = int(table["plan (materialise)"][1].split()[0])
    assert planned >= PARTICIPANTS
    # The insert baselines write as many rows as the plan wrote to the outbox.
    inserted = table["plain INSERT, 1,000 a transaction"][1]
    assert inserted == table["plain INSERT, one a transaction"][1]
    assert int(inserted.split()[0]) > planned
    for cells in table.values():
        assert len(cells) == 6
        assert float(cells[4]) > 0 and float(cells[5]) > 0  # ratios, whatever their size
    assert table["plain INSERT, 1,000 a transaction"][4] == "1.000"
    assert table["plain INSERT, one a transaction"][5] == "1.000"


def test_the_dispatch_benchmark_refuses_postgresql_without_a_server_url():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/dispatch.py"),
            "--participants",
            "1",
            "--backend",
            "postgresql",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "FLOURISH_BENCH_POSTGRES_URL"},
        timeout=120,
    )

    assert result.returncode != 0
    assert "FLOURISH_BENCH_POSTGRES_URL" in result.stderr


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_survey_benchmark_submits_every_survey_through_gunicorn_and_verifies_it(backend):
    database = ["--database-url", POSTGRES_URL] if backend == "postgresql" else []

    output = run_benchmark("survey_submit.py", "--quick", *database)

    lines = output.splitlines()
    # --quick: 12 timed submissions from 3 clients, after one warm-up submission per client.
    assert lines[0] == f"{backend}, gunicorn 2 workers x 2 threads, 3 clients, 12 submissions"
    assert lines[-1].startswith("verified: 15 of 15 acknowledged submissions")
    table = rows("\n".join(lines[:-1]))
    assert set(table) == {
        "bare GET /static/flourish.css",
        "bare GET /healthz",
        "survey submit",
        "survey HTTP requests",
        "survey POST alone",
    }
    assert table["survey submit"][1] == "12 submissions"
    # Each submission is three requests (page, POST, thank-you); each bare endpoint gets as many.
    for phase in ("survey HTTP requests", "bare GET /static/flourish.css", "bare GET /healthz"):
        assert table[phase][1] == "36 requests"
    for phase in ("bare GET /static/flourish.css", "bare GET /healthz", "survey submit"):
        cells = table[phase]
        assert len(cells) == 8
        rate = float(cells[3].replace(",", ""))  # 1,234.5 on a fast machine
        assert rate > 0 and float(cells[6]) > 0 and float(cells[7]) > 0
        assert 0 < float(cells[4]) <= float(cells[5])  # p50 <= p95 latency
    assert table["bare GET /static/flourish.css"][6] == "1.000"
    assert table["bare GET /healthz"][7] == "1.000"


def test_the_dashboard_benchmark_times_every_page_callback_against_its_baselines():
    output = run_benchmark("dashboards.py", "--participants", str(PARTICIPANTS), "--repeat", "1")

    assert output.splitlines()[0] == f"sqlite, {PARTICIPANTS} participants x 13 waves"
    table = rows(output)
    assert set(table) == {
        "GET /healthz",
        "bare SQL, every occasion",
        "overview",
        "compliance",
        "compliance, one wave",
        "participant timeline",
        "message queue",
    }
    for cells in table.values():
        assert len(cells) == 4
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) > 0
    assert table["GET /healthz"][2] == "1.000"
    assert table["bare SQL, every occasion"][3] == "1.000"


def test_the_mixedlm_benchmark_fits_both_engines_and_they_agree():
    output = run_benchmark("mixedlm.py", "--sizes", "60", "120", "--statsmodels-up-to", "60")

    assert output.splitlines()[0].startswith("mixedlm: score ~ arm * week + (1 + week | pid)")
    table = rows(output)
    assert set(table) == {"60", "120"}
    small, large = table["60"], table["120"]
    assert len(small) == 6 and float(small[2]) > 0 and float(small[3]) > 0
    assert float(small[4]) > 0  # statsmodels' seconds over the fast engine's, whatever its size
    assert float(small[5]) < 1e-3  # the engines' estimates agree
    assert large[3:] == ["-", "-", "-"]  # statsmodels skipped above --statsmodels-up-to
    assert 60 * 13 > int(small[1].replace(",", "")) > 60 * 5  # dropout removed some waves
