"""`flourish apikeys create|list|revoke`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from study.assistant.apikeys import InvalidKey, verify_api_key
from study.models import Study


@pytest.fixture
def study(sqlite_engine):
    with Session(sqlite_engine, expire_on_commit=False) as session:
        study = Study(slug="trial", title="Trial")
        session.add(study)
        session.commit()
        return study


def test_create_prints_a_working_key_once_and_list_shows_it_without_the_secret(
    flourish, study, sqlite_engine
):
    created = flourish("apikeys", "create", "trial", "--name", "lab assistant")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("flk_")
    assert "cannot be shown again" in created.stderr
    with Session(sqlite_engine) as session:
        verified = verify_api_key(session, key, scope="interactions:write", now=datetime.now(UTC))
        assert verified.name == "lab assistant"
        assert verified.created_by.startswith("cli:")

    listed = flourish("apikeys", "list", "trial")
    assert listed.exit_code == 0
    header, row = listed.stdout.strip().splitlines()
    assert header.split("\t")[0] == "prefix"
    assert row.split("\t")[:3] == [key.split("_")[1], "lab assistant", "interactions:write"]
    assert row.endswith("active")
    assert key.split("_", 2)[2] not in listed.output


def test_revoke_stops_the_key(flourish, study, sqlite_engine):
    key = flourish("apikeys", "create", "trial", "--name", "x").stdout.strip()
    prefix = key.split("_")[1]
    revoked = flourish("apikeys", "revoke", "trial", prefix)
    assert revoked.exit_code == 0, revoked.output
    with Session(sqlite_engine) as session, pytest.raises(InvalidKey):
        verify_api_key(session, key, scope="interactions:write", now=datetime.now(UTC))
    assert "revoked" in flourish("apikeys", "list", "trial").stdout
    again = flourish("apikeys", "revoke", "trial", prefix)
    assert again.exit_code != 0
    assert "already revoked" in again.output


def test_unknown_study_prefix_and_scope_are_errors(flourish, study):
    assert "no study 'nope'" in flourish("apikeys", "list", "nope").output
    assert "no API key" in flourish("apikeys", "revoke", "trial", "000000000000").output
    bad = flourish("apikeys", "create", "trial", "--name", "x", "--scope", "admin")
    assert bad.exit_code != 0
    assert "admin" in bad.output
