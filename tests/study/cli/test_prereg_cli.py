"""`flourish prereg validate|lock|check|show`."""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path

from sqlmodel import Session

from analysis.prereg_lock import read_lock
from study import audit

EXAMPLE = Path(__file__).parents[3] / "examples/preregistrations/assistant-flourishing-rct.yaml"


def copy_example(tmp_path) -> Path:
    target = tmp_path / "plan.yaml"
    shutil.copyfile(EXAMPLE, target)
    return target


def test_validate_prints_ok_or_every_problem(flourish, tmp_path):
    plan = copy_example(tmp_path)
    result = flourish("prereg", "validate", str(plan))
    assert result.exit_code == 0 and result.output.startswith(f"{plan}: ok (")
    plan.write_text(plan.read_text().replace("alpha: 0.05", "alpha: 1.5"))
    result = flourish("prereg", "validate", str(plan))
    assert result.exit_code == 1
    assert f"{plan}:" in result.output and ": alpha: " in result.output


def test_lock_audits_prints_the_text_and_check_confirms(flourish, sqlite_engine, tmp_path):
    plan = copy_example(tmp_path)
    assert flourish("prereg", "check", str(plan)).exit_code == 1  # never locked
    result = flourish("prereg", "lock", str(plan))
    assert result.exit_code == 0, result.output
    info = read_lock(plan)
    assert info.locked_by == f"cli:{getpass.getuser()}"
    assert "1) Data collection." in result.output and f"sha256 {info.sha256}" in result.output
    with Session(sqlite_engine) as session:
        [event] = list(audit.events(session))
    assert (event.action, event.details["sha256"]) == ("prereg.lock", info.sha256)
    checked = flourish("prereg", "check", str(plan))
    assert checked.exit_code == 0 and "matches its lock" in checked.output
    shown = flourish("prereg", "show", str(plan))
    assert shown.exit_code == 0 and f"locked: sha256 {info.sha256}" in shown.output


def test_a_changed_file_fails_check_and_needs_amend_to_relock(flourish, tmp_path):
    plan = copy_example(tmp_path)
    flourish("prereg", "lock", str(plan))
    plan.write_text(plan.read_text() + "\n# a comment changes the hash too\n")
    checked = flourish("prereg", "check", str(plan))
    assert checked.exit_code == 1 and "CHANGED since it was locked" in checked.output
    refused = flourish("prereg", "lock", str(plan))
    assert refused.exit_code == 1 and "--amend REASON" in refused.output
    amended = flourish("prereg", "lock", str(plan), "--amend", "typo in a comment")
    assert amended.exit_code == 0
    assert read_lock(plan).reason == "typo in a comment"
    assert flourish("prereg", "check", str(plan)).exit_code == 0


def test_check_refuses_a_lock_file_the_audit_log_does_not_know(flourish, tmp_path):
    plan = copy_example(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    flourish("prereg", "lock", str(plan))
    # The same plan and lock file, checked against a database that never saw the lock.
    shutil.copyfile(plan, other / "plan.yaml")
    shutil.copyfile(f"{plan}.lock.json", other / "plan.yaml.lock.json")
    fresh = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    flourish("--database-url", fresh, "db", "upgrade")
    result = flourish("--database-url", fresh, "prereg", "check", str(other / "plan.yaml"))
    assert result.exit_code == 1
    assert "the audit log has no record of this lock" in result.output


def test_check_with_data_names_variables_the_dataset_lacks(flourish, tmp_path):
    plan = copy_example(tmp_path)
    flourish("prereg", "lock", str(plan))
    data = tmp_path / "data.csv"
    data.write_text("participant,arm,occasion,week,who5_percentage\nP-1,control,baseline,0,40\n")
    result = flourish("prereg", "check", str(plan), "--data", str(data))
    assert result.exit_code == 1
    assert "unknown variable 'ucla3_total'" in result.output


def test_show_with_the_protocol_describes_each_outcome_from_its_instrument(flourish, tmp_path):
    plan = copy_example(tmp_path)
    protocol = EXAMPLE.parents[1] / "protocols/assistant-flourishing-rct.yaml"
    result = flourish("prereg", "show", str(plan), "--protocol", str(protocol))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "Primary: who5_percentage: WHO-5: WHO-5 percentage score, raw x 4, points (0 to 100)."
        in text
    )
    assert "Topp CW" in text and "NOT LOCKED" in text
