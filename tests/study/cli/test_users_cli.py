"""`flourish user`: managing researcher accounts from the shell."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from study import accounts
from study.models import AuditEvent, Researcher

PASSWORD = "a long enough passphrase"


def researcher(sqlite_engine, email: str) -> Researcher | None:
    with Session(sqlite_engine) as session:
        return accounts.find_researcher(session, email)


def last_event(sqlite_engine) -> AuditEvent:
    with Session(sqlite_engine) as session:
        return session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()


def create(flourish, email="pi@example.org", role="investigator", *extra):
    return flourish(
        "user", "create", "--email", email, "--role", role, "--password-stdin", *extra,
        input=PASSWORD + "\n",
    )  # fmt: skip


def test_create_with_password_on_stdin(flourish, sqlite_engine):
    result = create(flourish, "Pi@Example.org", "investigator", "--name", "Marie Curie")
    assert result.exit_code == 0, result.output
    assert "created #1 pi@example.org (Marie Curie): investigator, active" in result.output
    stored = researcher(sqlite_engine, "pi@example.org")
    assert stored.password_hash.startswith("$argon2id$")
    event = last_event(sqlite_engine)
    assert event.action == "researcher.created"
    assert event.actor.startswith("cli:")


def test_create_prompts_twice_for_the_password(flourish, sqlite_engine):
    result = flourish(
        "user", "create", "--email", "c@example.org", "--role", "coordinator",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    with Session(sqlite_engine) as session:
        now = last_event(sqlite_engine).occurred_at
        assert accounts.authenticate(session, "c@example.org", PASSWORD, now) is not None


def test_create_creates_nothing_when_the_confirmation_differs(flourish, sqlite_engine):
    result = flourish(
        "user", "create", "--email", "c@example.org", "--role", "coordinator",
        input=f"{PASSWORD}\nsomething else entirely\n",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert researcher(sqlite_engine, "c@example.org") is None


@pytest.mark.parametrize(
    ("args", "stdin", "message", "code"),
    [
        (["--role", "analyst"], "short\n", "at least 12 characters", 1),
        (["--role", "statistician"], PASSWORD + "\n", "'statistician' is not one of", 2),
    ],
)
def test_create_refuses_weak_passwords_and_unknown_roles(flourish, args, stdin, message, code):
    result = flourish(
        "user", "create", "--email", "a@example.org", *args, "--password-stdin", input=stdin
    )
    assert result.exit_code == code
    assert message in result.output


def test_create_refuses_a_duplicate(flourish):
    create(flourish)
    result = create(flourish, "PI@example.org")
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_list_shows_every_account_without_secrets(flourish):
    assert "no researcher accounts" in flourish("user", "list").output
    create(flourish, "pi@example.org", "investigator")
    create(flourish, "analyst@example.org", "analyst")
    output = flourish("user", "list").output
    lines = output.splitlines()
    assert lines[0].split() == ["id", "email", "name", "role", "status", "last", "sign-in", "(UTC)"]
    assert lines[1].split()[1:] == ["analyst@example.org", "analyst", "active", "never"]
    assert lines[2].split()[1:] == ["pi@example.org", "investigator", "active", "never"]
    assert "argon2" not in output


def test_set_role(flourish, sqlite_engine):
    create(flourish, "c@example.org", "coordinator")
    result = flourish("user", "set-role", "--email", "c@example.org", "--role", "analyst")
    assert result.exit_code == 0, result.output
    assert "role set: #1 c@example.org: analyst, active" in result.output
    assert researcher(sqlite_engine, "c@example.org").role == "analyst"
    assert last_event(sqlite_engine).action == "researcher.role_changed"


def test_set_password(flourish, sqlite_engine):
    create(flourish)
    old_hash = researcher(sqlite_engine, "pi@example.org").password_hash
    result = flourish(
        "user", "set-password", "--email", "pi@example.org", "--password-stdin",
        input="a different long passphrase\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert researcher(sqlite_engine, "pi@example.org").password_hash != old_hash
    assert last_event(sqlite_engine).action == "researcher.password_changed"


def test_deactivate_and_reactivate(flourish, sqlite_engine):
    create(flourish)
    result = flourish("user", "deactivate", "--email", "pi@example.org")
    assert result.exit_code == 0, result.output
    assert "deactivated: #1 pi@example.org: investigator, inactive" in result.output
    assert not researcher(sqlite_engine, "pi@example.org").is_active
    assert flourish("user", "reactivate", "--email", "pi@example.org").exit_code == 0
    assert researcher(sqlite_engine, "pi@example.org").is_active


def test_the_only_admin_cannot_be_deactivated(flourish, sqlite_engine):
    create(flourish, "admin@example.org", "admin")
    result = flourish("user", "deactivate", "--email", "admin@example.org")
    assert result.exit_code == 1
    assert "only active admin" in result.output
    assert researcher(sqlite_engine, "admin@example.org").is_active


@pytest.mark.parametrize(
    "command",
    [["deactivate"], ["reactivate"], ["set-role", "--role", "admin"]],
)
def test_unknown_emails_are_reported(flourish, command):
    result = flourish("user", command[0], "--email", "ghost@example.org", *command[1:])
    assert result.exit_code == 1
    assert "no researcher account with email 'ghost@example.org'" in result.output
