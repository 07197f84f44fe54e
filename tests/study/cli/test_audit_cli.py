"""`flourish audit`: exporting the log and verifying its chain."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from study import audit

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def logged(sqlite_engine):
    """Three events an hour apart, as a running study would leave them."""
    with Session(sqlite_engine) as session:
        for hour, action in enumerate(["study.loaded", "participant.enrolled", "consent.given"]):
            audit.record(session, "system:test", action, at=START + timedelta(hours=hour))
        session.commit()


def test_export_jsonl_to_stdout(flourish, logged):
    result = flourish("audit", "export")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["action"] for row in rows] == [
        "study.loaded",
        "participant.enrolled",
        "consent.given",
    ]
    assert audit.verify_chain(audit.parse_export(result.output, "jsonl")) == []


def test_export_csv_to_a_file(flourish, logged, tmp_path):
    out = tmp_path / "audit.csv"
    result = flourish("audit", "export", "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 3 events" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["action"] for row in rows][-1] == "consent.given"
    assert tuple(rows[0]) == audit.EXPORT_FIELDS


def test_export_since_keeps_later_events_only(flourish, logged):
    result = flourish("audit", "export", "--since", "2026-03-02T10:00:00")
    actions = [json.loads(line)["action"] for line in result.output.splitlines()]
    assert actions == ["participant.enrolled", "consent.given"]


def test_export_since_honours_an_offset(flourish, logged):
    result = flourish("audit", "export", "--since", "2026-03-02T12:30:00+02:00")
    actions = [json.loads(line)["action"] for line in result.output.splitlines()]
    assert actions == ["consent.given"]


def test_export_refuses_a_malformed_since(flourish):
    result = flourish("audit", "export", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "not an ISO 8601" in result.output


def test_each_export_is_itself_recorded(flourish, logged, sqlite_engine):
    flourish("audit", "export", "--format", "csv")
    with Session(sqlite_engine) as session:
        last = list(audit.events(session))[-1]
    assert last.action == "audit.exported"
    assert last.actor.startswith("cli:")
    assert last.details == {"format": "csv", "since": None, "events": 3, "to": "stdout"}


def test_verify_reports_an_intact_chain(flourish, logged, sqlite_engine):
    result = flourish("audit", "verify")
    assert result.exit_code == 0, result.output
    with Session(sqlite_engine) as session:
        head = list(audit.events(session))[-1].event_hash
    assert f"audit log intact: 3 events; newest hash {head}" in result.output


def test_verify_an_empty_log(flourish):
    result = flourish("audit", "verify")
    assert result.exit_code == 0
    assert "intact: 0 events" in result.output


def test_verify_fails_and_names_the_tampered_event(flourish, logged, sqlite_engine):
    with sqlite_engine.begin() as connection:
        connection.execute(text("DROP TRIGGER audit_event_no_update"))
        connection.execute(text("UPDATE audit_event SET actor = 'cli:mallory' WHERE id = 2"))
    result = flourish("audit", "verify")
    assert result.exit_code == 1
    assert "event 2: content does not match its hash" in result.output
    assert "broken: 1 problem(s) in 3 events" in result.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_verify_an_export_file(flourish, logged, tmp_path, fmt):
    out = tmp_path / f"audit.{fmt}"
    flourish("audit", "export", "--format", fmt, "--out", str(out))
    assert flourish("audit", "verify", "--file", str(out)).exit_code == 0
    out.write_text(out.read_text().replace("participant.enrolled", "participant.excluded"))
    result = flourish("audit", "verify", "--file", str(out))
    assert result.exit_code == 1
    assert "event 2: content does not match its hash" in result.output


def test_verify_a_partial_export_says_what_it_cannot_check(flourish, logged, tmp_path):
    out = tmp_path / "recent.jsonl"
    flourish("audit", "export", "--since", "2026-03-02T10:00", "--out", str(out))
    result = flourish("audit", "verify", "--file", str(out))
    assert result.exit_code == 0, result.output
    assert "starts at event 2" in result.output
    assert "intact: 2 events" in result.output


def test_verify_refuses_a_file_that_is_not_an_export(flourish, tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": "world"}\n')
    result = flourish("audit", "verify", "--file", str(path))
    assert result.exit_code == 1
    assert "not an audit export" in result.output
