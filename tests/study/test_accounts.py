"""Researcher accounts: roles, password policy and hashing, sign-in, lockout, audited changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlmodel import col, select

from study import accounts, audit
from study.accounts import (
    LOCKOUT_THRESHOLD,
    LOCKOUT_WINDOW,
    ROLES,
    AccountError,
    authenticate,
    create_researcher,
    deactivate,
    has_permission,
    reactivate,
    set_password,
    set_role,
)
from study.models import AuditEvent

PASSWORD = "a long enough passphrase"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make(session, email="pi@example.org", role="investigator", password=PASSWORD, **kwargs):
    researcher = create_researcher(
        session, email=email, password=password, role=role, actor="cli:test", **kwargs
    )
    session.commit()
    return researcher


def actions(session) -> list[str]:
    return list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))))


# --- roles and permissions ----------------------------------------------------------------------


def test_analysts_never_see_contact_details():
    assert not has_permission("analyst", "view_contacts")
    assert {r for r in ROLES if has_permission(r, "view_contacts")} == {
        "admin",
        "investigator",
        "coordinator",
    }


@pytest.mark.parametrize(
    ("permission", "roles"),
    [
        ("view_study", {"admin", "investigator", "coordinator", "analyst"}),
        ("manage_users", {"admin"}),
        ("export_audit", {"admin", "investigator"}),
        ("load_protocol", {"admin", "investigator"}),
        ("unblind", {"admin", "investigator"}),
        ("export_data", {"admin", "investigator", "analyst"}),
    ],
)
def test_permission_table(permission, roles):
    assert {r for r in ROLES if has_permission(r, permission)} == roles


def test_unknown_role_has_no_permission_and_unknown_permission_is_an_error():
    assert not has_permission("superuser", "view_study")
    with pytest.raises(KeyError, match="unknown permission"):
        has_permission("admin", "view_everything")


# --- creating accounts --------------------------------------------------------------------------


def test_password_is_stored_as_argon2id_never_in_plain_text(session):
    researcher = make(session)
    assert researcher.password_hash.startswith("$argon2id$")
    assert PASSWORD not in researcher.password_hash
    assert PasswordHasher().verify(researcher.password_hash, PASSWORD)


def test_email_is_normalised_to_lower_case(session):
    researcher = make(session, email="  Ada.Lovelace@Example.ORG ")
    assert researcher.email == "ada.lovelace@example.org"
    assert accounts.find_researcher(session, "ADA.LOVELACE@example.org").id == researcher.id


def test_duplicate_email_is_refused_whatever_its_case(session):
    make(session, email="pi@example.org")
    with pytest.raises(AccountError, match="already exists"):
        make(session, email="PI@example.org")


def test_unknown_role_is_refused(session):
    with pytest.raises(AccountError, match="unknown role 'statistician'"):
        make(session, role="statistician")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short pass", "at least 12 characters"),
        ("Curie@Example.org", "must not be the email"),
        ("aaaaaaaaaaaaaaaa", "one character repeated"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_weak_passwords_are_refused(session, password, message):
    with pytest.raises(AccountError, match=message):
        make(session, email="curie@example.org", password=password)
    assert accounts.find_researcher(session, "curie@example.org") is None


@pytest.mark.parametrize("email", ["", "no-at-sign", "@example.org", "a@", "a b@example.org"])
def test_malformed_emails_are_refused(session, email):
    with pytest.raises(AccountError, match="not an email address"):
        make(session, email=email)


def test_an_actor_is_required(session):
    with pytest.raises(AccountError, match="actor is required"):
        create_researcher(
            session, email="pi@example.org", password=PASSWORD, role="admin", actor=""
        )


def test_creation_is_audited_without_the_password_hash(session):
    researcher = make(session, name="Grace Hopper")
    event = session.exec(select(AuditEvent)).one()
    assert event.action == "researcher.created"
    assert event.actor == "cli:test"
    assert event.entity_id == str(researcher.id)
    assert event.before_hash == ""
    assert event.after_hash == audit.state_hash(accounts.public_state(researcher))
    assert "password_hash" not in accounts.public_state(researcher)
    assert researcher.password_hash not in str(event.details)


# --- signing in ---------------------------------------------------------------------------------


def test_right_password_signs_in_and_records_the_time(session):
    researcher = make(session, email="Coord@example.org", role="coordinator")
    signed_in = authenticate(session, "coord@EXAMPLE.org", PASSWORD, NOW, origin="192.0.2.7")
    session.commit()
    assert signed_in is not None and signed_in.id == researcher.id
    assert signed_in.last_login_at == NOW
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "login.succeeded")).one()
    assert event.actor == "researcher:coord@example.org"
    assert event.occurred_at == NOW
    assert event.details == {"origin": "192.0.2.7"}


def test_wrong_password_fails_and_is_audited(session):
    researcher = make(session)
    assert authenticate(session, researcher.email, "not the password", NOW) is None
    session.commit()
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "login.failed")).one()
    assert event.entity_id == str(researcher.id)
    assert event.details["reason"] == "wrong_password"
    assert "not the password" not in str(event.details)


def test_unknown_email_fails_without_storing_what_was_typed(session):
    assert authenticate(session, "nobody@example.org", PASSWORD, NOW) is None
    session.commit()
    event = session.exec(select(AuditEvent)).one()
    assert event.action == "login.failed"
    assert event.details["reason"] == "unknown_email"
    assert "nobody" not in str(event.details)
    assert len(event.details["email_sha256"]) == 16


def test_inactive_account_is_refused_even_with_the_right_password(session):
    make(session, email="admin@example.org", role="admin")
    researcher = make(session)
    deactivate(session, researcher, actor="cli:test")
    session.commit()
    assert authenticate(session, researcher.email, PASSWORD, NOW) is None
    event = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert (event.action, event.details["reason"]) == ("login.refused", "inactive")


def test_outdated_hash_parameters_are_upgraded_on_sign_in(session):
    researcher = make(session)
    researcher.password_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash(PASSWORD)
    session.add(researcher)
    session.commit()
    old_hash = researcher.password_hash
    assert authenticate(session, researcher.email, PASSWORD, NOW) is not None
    assert researcher.password_hash != old_hash
    assert not PasswordHasher().check_needs_rehash(researcher.password_hash)


# --- lockout ------------------------------------------------------------------------------------


def fail(session, email, times, at):
    for _ in range(times):
        assert authenticate(session, email, "a wrong guess!", at) is None
    session.commit()


def test_account_locks_after_repeated_failures_even_for_the_right_password(session):
    researcher = make(session)
    fail(session, researcher.email, LOCKOUT_THRESHOLD, NOW)
    assert accounts.is_locked_out(session, researcher, NOW + timedelta(minutes=1))
    assert authenticate(session, researcher.email, PASSWORD, NOW + timedelta(minutes=1)) is None
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert (last.action, last.details["reason"]) == ("login.refused", "locked_out")


def test_one_failure_fewer_than_the_threshold_does_not_lock(session):
    researcher = make(session)
    fail(session, researcher.email, LOCKOUT_THRESHOLD - 1, NOW)
    assert authenticate(session, researcher.email, PASSWORD, NOW) is not None


def test_lockout_ends_when_the_failures_age_out_of_the_window(session):
    researcher = make(session)
    fail(session, researcher.email, LOCKOUT_THRESHOLD, NOW)
    later = NOW + LOCKOUT_WINDOW + timedelta(seconds=1)
    assert authenticate(session, researcher.email, PASSWORD, later) is not None


def test_a_successful_sign_in_resets_the_count(session):
    researcher = make(session)
    fail(session, researcher.email, LOCKOUT_THRESHOLD - 1, NOW)
    assert authenticate(session, researcher.email, PASSWORD, NOW + timedelta(seconds=1))
    fail(session, researcher.email, LOCKOUT_THRESHOLD - 1, NOW + timedelta(seconds=2))
    assert authenticate(session, researcher.email, PASSWORD, NOW + timedelta(seconds=3))


def test_failures_on_one_account_do_not_lock_another(session):
    first = make(session, email="first@example.org")
    second = make(session, email="second@example.org")
    fail(session, first.email, LOCKOUT_THRESHOLD, NOW)
    assert authenticate(session, second.email, PASSWORD, NOW) is not None


# --- changing accounts --------------------------------------------------------------------------


def test_set_password_replaces_the_hash_and_is_audited(session):
    researcher = make(session)
    set_password(session, researcher, "a brand new passphrase", actor="researcher:admin@x.org")
    session.commit()
    assert authenticate(session, researcher.email, PASSWORD, NOW) is None
    assert authenticate(session, researcher.email, "a brand new passphrase", NOW) is not None
    assert "researcher.password_changed" in actions(session)


def test_set_password_applies_the_policy(session):
    researcher = make(session)
    with pytest.raises(AccountError, match="at least 12"):
        set_password(session, researcher, "tiny", actor="cli:test")


def test_set_role_records_before_and_after(session):
    researcher = make(session, role="coordinator")
    before = audit.state_hash(accounts.public_state(researcher))
    set_role(session, researcher, "analyst", actor="cli:test")
    session.commit()
    event = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert event.action == "researcher.role_changed"
    assert event.before_hash == before
    assert event.after_hash == audit.state_hash(accounts.public_state(researcher))
    assert event.details == {"from": "coordinator", "to": "analyst"}
    assert researcher.role == "analyst"


def test_set_role_refuses_unknown_and_unchanged_roles(session):
    researcher = make(session, role="coordinator")
    with pytest.raises(AccountError, match="unknown role"):
        set_role(session, researcher, "boss", actor="cli:test")
    with pytest.raises(AccountError, match="already has the role"):
        set_role(session, researcher, "coordinator", actor="cli:test")


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(session):
    admin = make(session, email="admin@example.org", role="admin")
    with pytest.raises(AccountError, match="only active admin"):
        set_role(session, admin, "analyst", actor="cli:test")
    with pytest.raises(AccountError, match="only active admin"):
        deactivate(session, admin, actor="cli:test")
    make(session, email="second-admin@example.org", role="admin")
    deactivate(session, admin, actor="cli:test")
    assert not admin.is_active


def test_deactivate_and_reactivate_are_audited(session):
    researcher = make(session)
    deactivate(session, researcher, actor="cli:test")
    with pytest.raises(AccountError, match="already inactive"):
        deactivate(session, researcher, actor="cli:test")
    reactivate(session, researcher, actor="cli:test")
    session.commit()
    assert researcher.is_active
    assert actions(session)[-2:] == ["researcher.deactivated", "researcher.reactivated"]
    assert authenticate(session, researcher.email, PASSWORD, NOW) is not None


def test_every_account_change_leaves_the_chain_intact(session):
    researcher = make(session, role="coordinator")
    set_role(session, researcher, "investigator", actor="cli:test")
    set_password(session, researcher, "another long passphrase", actor="cli:test")
    authenticate(session, researcher.email, "wrong password!!", NOW)
    session.commit()
    assert audit.verify_chain(audit.events(session)) == []
