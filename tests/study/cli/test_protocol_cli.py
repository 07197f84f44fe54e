"""`flourish protocol`: validate files, load them into the database, list versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, col, select

from study.cli import main
from study.models import AuditEvent, ProtocolVersion

EXAMPLES = Path(__file__).parents[3] / "examples"
EXAMPLE = EXAMPLES / "protocols" / "assistant-flourishing-rct.yaml"


@pytest.fixture
def examples(tmp_path) -> Path:
    """A copy of the examples folder that tests may edit."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


def test_validate_prints_ok_with_the_hash_prefix(flourish):
    from study.protocol import load_protocol

    result = flourish("protocol", "validate", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    expected_hash = load_protocol(EXAMPLE).content_hash[:12]
    assert result.output == f"{EXAMPLE}: ok ({expected_hash})\n"


def test_validate_prints_every_problem_and_exits_1(flourish, examples):
    path = examples / "protocols" / "assistant-flourishing-rct.yaml"
    text = path.read_text()
    text = text.replace("      temperature: 0.7\n", "      temperature: 7\n", 1)
    text = text.replace("  scheme: permuted_blocks\n", "  schema: permuted_blocks\n", 1)
    path.write_text(text)
    lines = text.splitlines()
    temperature = next(i for i, line in enumerate(lines, 1) if "temperature: 7" in line)
    schema = next(i for i, line in enumerate(lines, 1) if "schema: permuted" in line)
    result = flourish("protocol", "validate", str(path), str(EXAMPLE))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}:{temperature}: arms[0].assistant.temperature: "
        "input should be less than or equal to 2 (got 7)",
        f"{path}:{temperature}: arms[1].assistant.temperature: "
        "input should be less than or equal to 2 (got 7)",
        f"{path}:{schema - 1}: allocation.scheme: missing required key 'scheme'",
        f"{path}:{schema}: allocation.schema: unknown key 'schema'; did you mean 'scheme'?",
        f"{EXAMPLE}: ok ({result.output.rsplit('(', 1)[1][:12]})",
    ]


def test_validate_reports_a_missing_file(flourish, tmp_path):
    missing = tmp_path / "nope.yaml"
    result = flourish("protocol", "validate", str(missing))
    assert result.exit_code == 1
    assert result.output == f"{missing}: cannot read: No such file or directory\n"


def test_load_registers_a_new_study_then_does_nothing_for_the_same_content(flourish, sqlite_engine):
    first = flourish("protocol", "load", str(EXAMPLE))
    assert first.exit_code == 0, first.output
    assert first.output.startswith("assistant-flourishing-rct: version 1 (new study; ")
    with Session(sqlite_engine) as session:
        event = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
        count = len(session.exec(select(AuditEvent)).all())
    assert event.actor.startswith("cli:")

    again = flourish("protocol", "load", str(EXAMPLE))
    assert again.exit_code == 0
    assert again.output.startswith("assistant-flourishing-rct: version 1 (unchanged; ")
    with Session(sqlite_engine) as session:
        assert len(session.exec(select(AuditEvent)).all()) == count


def test_load_an_amended_constitution_and_list_the_versions(flourish, examples, sqlite_engine):
    path = examples / "protocols" / "assistant-flourishing-rct.yaml"
    assert flourish("protocol", "load", str(path)).exit_code == 0
    constitution = examples / "assistants" / "positive-alignment-constitution.md"
    constitution.write_text(constitution.read_text() + "\n- Never use guilt to motivate.\n")
    amended = flourish("protocol", "load", str(path))
    assert amended.exit_code == 0, amended.output
    assert amended.output.startswith("assistant-flourishing-rct: version 2 (amended; ")

    listing = flourish("protocol", "versions", "assistant-flourishing-rct")
    assert listing.exit_code == 0, listing.output
    with Session(sqlite_engine) as session:
        hashes = [v.content_hash[:12] for v in session.exec(select(ProtocolVersion))]
    lines = listing.output.splitlines()
    assert lines[0].startswith("assistant-flourishing-rct: Assistant Flourishing Trial")
    assert lines[1].startswith(f"  v1  {hashes[0]}  ") and not lines[1].endswith("(current)")
    assert lines[2].startswith(f"  v2  {hashes[1]}  ") and lines[2].endswith("(current)")
    assert "cli:" in lines[2]


def test_load_refuses_an_invalid_protocol_and_writes_nothing(flourish, examples, sqlite_engine):
    path = examples / "protocols" / "assistant-flourishing-rct.yaml"
    path.write_text(path.read_text().replace("default: sms", "default: pigeon"))
    result = flourish("protocol", "load", str(path))
    assert result.exit_code == 1
    assert ": channels.default: 'pigeon' is not one of sms, email, web" in result.output
    with Session(sqlite_engine) as session:
        assert session.exec(select(ProtocolVersion)).all() == []


def test_versions_of_an_unknown_study_is_an_error(flourish):
    result = flourish("protocol", "versions", "no-such-study")
    assert result.exit_code == 1
    assert "there is no study 'no-such-study'" in result.output


def test_load_into_an_unmigrated_database_says_to_upgrade(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOURISH_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("FLOURISH_ENV", "test")
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = CliRunner().invoke(main, ["--database-url", url, "protocol", "load", str(EXAMPLE)])
    assert result.exit_code == 1
    assert "run `flourish db upgrade` first" in result.output
