"""Fixtures for `flourish` command tests."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from study.cli import main


@pytest.fixture
def flourish(sqlite_engine, tmp_path, monkeypatch):
    """Run `flourish ...` against a migrated SQLite database; returns click's result."""
    monkeypatch.setenv("FLOURISH_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv(
        "FLOURISH_DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("FLOURISH_ENV", "test")
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return run
