"""Per-study API keys: shown once, stored as a hash, scoped, revocable, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from study import audit
from study.assistant.apikeys import (
    ApiKeyError,
    InvalidKey,
    MissingScope,
    create_api_key,
    get_api_key,
    list_api_keys,
    revoke_api_key,
    verify_api_key,
)
from study.models import ApiKey, AuditEvent
from study.pii import PiiVault

from .trial import make_trial

SCOPE = "interactions:write"


@pytest.fixture
def trial(session):
    return make_trial(session, PiiVault(Fernet.generate_key().decode()))


def create(session, trial, clock, **overrides):
    arguments = {
        "study_id": trial.study.id,
        "name": "ingest from the lab assistant",
        "scopes": [SCOPE],
        "actor": "cli:alice",
        "now": clock.now(),
    }
    arguments.update(overrides)
    row, secret = create_api_key(session, **arguments)
    session.commit()
    return row, secret


def test_the_key_is_returned_once_and_only_its_hash_is_stored(session, trial, clock):
    row, secret = create(session, trial, clock)
    assert secret.startswith(f"flk_{row.prefix}_")
    stored = session.exec(select(ApiKey)).one()
    assert secret.split("_", 2)[2] not in stored.secret_hash
    assert len(stored.secret_hash) == 64
    assert (stored.study_id, stored.scopes, stored.created_by) == (
        trial.study.id,
        [SCOPE],
        "cli:alice",
    )


def test_two_keys_differ(session, trial, clock):
    (_, first), (_, second) = create(session, trial, clock), create(session, trial, clock)
    assert first != second
    assert first.split("_")[1] != second.split("_")[1]


def test_a_valid_key_verifies_and_records_its_use(session, trial, clock):
    row, secret = create(session, trial, clock)
    later = clock.advance(hours=1)
    assert verify_api_key(session, secret, scope=SCOPE, now=later).id == row.id
    session.commit()
    assert session.get(ApiKey, row.id).last_used_at == later


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # wrong secret
        lambda key: key.replace(key.split("_")[1], "0" * 12),  # unknown prefix
        lambda key: key[:-2],  # malformed
        lambda key: "",
        lambda key: "Bearer " + key,
    ],
    ids=["wrong-secret", "unknown-prefix", "truncated", "empty", "with-scheme"],
)
def test_anything_but_the_exact_key_is_invalid(session, trial, clock, mangle):
    _, secret = create(session, trial, clock)
    with pytest.raises(InvalidKey):
        verify_api_key(session, mangle(secret), scope=SCOPE, now=clock.now())


def test_a_revoked_key_is_invalid_and_the_revocation_is_audited(session, trial, clock):
    row, secret = create(session, trial, clock)
    revoke_api_key(session, row, actor="cli:bob", now=clock.advance(minutes=5))
    session.commit()
    with pytest.raises(InvalidKey):
        verify_api_key(session, secret, scope=SCOPE, now=clock.now())
    with pytest.raises(ApiKeyError, match="already revoked"):
        revoke_api_key(session, row, actor="cli:bob", now=clock.now())
    actions = [(event.action, event.actor) for event in audit.events(session)]
    assert actions == [("apikey.create", "cli:alice"), ("apikey.revoke", "cli:bob")]


def test_the_audit_log_never_holds_the_secret_or_its_hash(session, trial, clock):
    row, secret = create(session, trial, clock)
    exported = audit.export(session)
    assert secret.split("_", 2)[2] not in exported
    assert row.secret_hash not in exported
    event = session.exec(select(AuditEvent)).one()
    assert event.details["prefix"] == row.prefix
    assert event.details["scopes"] == [SCOPE]


def test_a_key_without_the_scope_is_refused_as_forbidden(session, trial, clock, monkeypatch):
    from study.assistant import apikeys

    monkeypatch.setitem(apikeys.SCOPES, "interactions:read", "read turns")
    _, secret = create(session, trial, clock, scopes=["interactions:read"])
    with pytest.raises(MissingScope, match=SCOPE):
        verify_api_key(session, secret, scope=SCOPE, now=clock.now())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["admin"]}, "unknown scope"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "200 characters"),
    ],
)
def test_keys_need_a_name_and_known_scopes(session, trial, clock, overrides, message):
    with pytest.raises(ApiKeyError, match=message):
        create(session, trial, clock, **overrides)


def test_listing_and_finding_keep_to_one_study(session, trial, clock):
    other = make_trial(session, trial.vault, slug="other")
    mine, _ = create(session, trial, clock)
    theirs, _ = create(session, other, clock)
    assert [key.id for key in list_api_keys(session, trial.study.id)] == [mine.id]
    assert get_api_key(session, trial.study.id, mine.prefix).id == mine.id
    with pytest.raises(ApiKeyError, match="no API key"):
        get_api_key(session, trial.study.id, theirs.prefix)


def test_a_revoked_key_stays_listed(session, trial, clock):
    row, _ = create(session, trial, clock)
    revoke_api_key(session, row, actor="cli:bob", now=clock.now() + timedelta(minutes=1))
    session.commit()
    [listed] = list_api_keys(session, trial.study.id)
    assert listed.revoked_at is not None
