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
