"""`flourish doctor`: OK/WARN/FAIL lines with fixes, JSON, and an exit status scripts can use."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet


def test_a_development_checkout_has_warnings_but_no_failure(flourish):
    result = flourish("doctor")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("OK") and "database" in line for line in lines)
    assert any(line.startswith("WARN") and "settings" in line for line in lines)
    assert "fix: set FLOURISH_ENV=production" in result.output
    assert "0 failure(s)" in result.output


def test_a_failure_makes_the_exit_status_1_and_says_what_to_fix(flourish, monkeypatch):
    monkeypatch.setenv("FLOURISH_ENV", "production")
    monkeypatch.setenv("FLOURISH_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("FLOURISH_PII_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("FLOURISH_PUBLIC_URL", raising=False)
    result = flourish("doctor")
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if "public-url" in line]
    assert line.startswith("FAIL") and "FLOURISH_PUBLIC_URL is not set" in line
    assert "fix: set FLOURISH_PUBLIC_URL to the https address" in result.output


def test_json_lists_every_check_with_the_overall_status(flourish):
    result = flourish("doctor", "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["status"] == "warn"
    names = [check["name"] for check in report["checks"]]
    assert names[:4] == ["settings", "secret-key", "pii-key", "database"]
    assert {"sms", "email", "assistants", "allocation-seed", "scheduler"} <= set(names)
    assert set(report["checks"][0]) == {"name", "status", "message", "fix"}
