"""`study.doctor`: each check says ok, warn or fail about one thing, and what to fix.

The environment is a plain dict; the database is a real one with the example study registered
(SMS, email and web; two arms with assistants; an allocation seed variable).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session

from study.db import make_engine
from study.doctor import FAIL, OK, WARN, diagnose, worst
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from study.scheduler import Beater, write_heartbeat

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
SECRET = "s3cr3t-" + "k" * 40
PII = Fernet.generate_key().decode()


@pytest.fixture
def study_engine(sqlite_engine):
    with Session(sqlite_engine) as session:
        register_protocol(session, load_protocol(EXAMPLE), actor="test")
        session.commit()
    return sqlite_engine


@pytest.fixture
def empty_engine(sqlite_template, tmp_path):
    """Another migrated database, with no study and no heartbeat."""
    return make_engine(sqlite_template.fresh_url(tmp_path))


@pytest.fixture
def production(study_engine, tmp_path, clock) -> dict[str, str]:
    """A production environment that passes every check (SQLite aside)."""
    write_heartbeat(study_engine, Beater(started_at=clock.now()), clock.now())
    return {
        "FLOURISH_ENV": "production",
        "FLOURISH_INSTANCE_PATH": str(tmp_path / "instance"),
        "FLOURISH_DATABASE_URL": study_engine.url.render_as_string(hide_password=False),
        "FLOURISH_SECRET_KEY": SECRET,
        "FLOURISH_PII_KEY": PII,
        "FLOURISH_PUBLIC_URL": "https://study.example.org",
        "FLOURISH_ALLOCATION_SEED": "seed-" + "z" * 30,
        "FLOURISH_ARM_INSTRUCT_API_KEY": "sk-instruct-secret",
        "FLOURISH_ARM_REFLECTIVE_API_KEY": "sk-reflective-secret",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "twilio-token-secret",
        "TWILIO_FROM": "+15005550006",
        "SMTP_HOST": "smtp.example.org",
        "SMTP_USER": "study",
        "SMTP_PASSWORD": "smtp-secret",
        "SMTP_FROM": "study@example.org",
    }


def check(environ, engine, clock, name: str):
    """The one check called `name`."""
    [found] = [c for c in diagnose(environ, clock.now(), engine=engine) if c.name == name]
    return found


def without(environ: dict, *names: str) -> dict:
    return {key: value for key, value in environ.items() if key not in names}


def test_a_complete_production_configuration_passes_everything_but_sqlite(
    production, study_engine, clock
):
    checks = diagnose(production, clock.now(), engine=study_engine)
    statuses = {c.name: c.status for c in checks}
    assert statuses.pop("database") == WARN  # SQLite: fine for a pilot, said so
    assert set(statuses.values()) == {OK}, [c for c in checks if c.status != OK]
    assert worst(checks) == WARN
    everything = " ".join(f"{c.message} {c.fix}" for c in checks)
    for secret in (SECRET, PII, "sk-instruct-secret", "twilio-token-secret", "smtp-secret"):
        assert secret not in everything


# --- keys ---------------------------------------------------------------------------------------


def test_production_without_a_secret_key_fails_and_the_other_checks_still_run(
    production, study_engine, clock
):
    checks = {
        c.name: c
        for c in diagnose(
            without(production, "FLOURISH_SECRET_KEY"), clock.now(), engine=study_engine
        )
    }
    assert checks["settings"].status == FAIL
    assert checks["secret-key"].status == FAIL
    assert "flourish keys generate" in checks["secret-key"].fix
    assert checks["sms"].status == OK and checks["scheduler"].status == OK


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("FLOURISH_SECRET_KEY", "too-short", "at least 32"),
        ("FLOURISH_SECRET_KEY", "change-me-" + "x" * 40, "placeholder"),
        ("FLOURISH_PII_KEY", "not-a-fernet-key", "not a valid Fernet key"),
    ],
)
def test_weak_or_broken_keys_fail_in_production(production, study_engine, clock, name, value, says):
    label = name.removeprefix("FLOURISH_").lower().replace("_", "-")
    found = check({**production, name: value}, study_engine, clock, label)
    assert found.status == FAIL and says in found.message


def test_a_development_key_copied_into_production_fails(production, study_engine, clock, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "dev-pii-key").write_text(PII)
    found = check(production, study_engine, clock, "pii-key")
    assert found.status == FAIL and "development key" in found.message


def test_development_may_use_the_generated_keys(production, study_engine, clock):
    environ = {
        **without(production, "FLOURISH_SECRET_KEY", "FLOURISH_PII_KEY"),
        "FLOURISH_ENV": "development",
    }
    checks = {c.name: c for c in diagnose(environ, clock.now(), engine=study_engine)}
    assert checks["secret-key"].status == OK and checks["pii-key"].status == OK
    assert checks["settings"].status == WARN  # not production: said, not failed


# --- database -----------------------------------------------------------------------------------


def test_an_unreachable_database_fails_without_showing_its_password(production, clock):
    engine = make_engine("postgresql://flourish:hunter2@127.0.0.1:1/flourish")
    checks = {c.name: c for c in diagnose(production, clock.now(), engine=engine)}
    assert checks["database"].status == FAIL
    assert "hunter2" not in checks["database"].message
    assert "FLOURISH_DATABASE_URL" in checks["database"].fix
    assert checks["sms"].status == WARN and "not checked" in checks["sms"].message


def test_a_database_url_that_names_no_usable_database_is_a_failure_not_a_crash(production, clock):
    environ = {**production, "FLOURISH_DATABASE_URL": "mysql+nodriver://u:hunter2@db/flourish"}
    checks = {c.name: c for c in diagnose(environ, clock.now())}
    assert checks["database"].status == FAIL
    assert "cannot be used" in checks["database"].message
    assert checks["scheduler"].status == WARN and "not checked" in checks["scheduler"].message


def test_a_database_behind_the_newest_migration_fails_with_the_command_to_run(
    production, clock, tmp_path
):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    found = check(production, engine, clock, "database")
    assert found.status == FAIL and "none (empty)" in found.message
    assert "flourish db upgrade" in found.fix


@pytest.mark.postgres
def test_postgres_at_the_newest_migration_is_ok(postgres_template, production, clock):
    engine = make_engine(postgres_template.fresh_url())
    assert check(production, engine, clock, "database").status == OK
    engine.dispose()


# --- public URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        (None, FAIL, "not set"),
        ("http://study.example.org", FAIL, "not https"),
        ("https://localhost:8443", FAIL, "not reachable"),
        ("https://study.example.org/flourish", WARN, "has a path"),
        ("study.example.org", FAIL, "not an http(s) URL"),
    ],
)
def test_the_public_url_must_be_the_https_address_twilio_and_participants_use(
    production, study_engine, clock, url, status, says
):
    environ = without(production, "FLOURISH_PUBLIC_URL")
    if url is not None:
        environ["FLOURISH_PUBLIC_URL"] = url
    found = check(environ, study_engine, clock, "public-url")
    assert (found.status, says in found.message) == (status, True), found


# --- channels, assistants, seeds ----------------------------------------------------------------


def test_sms_credentials_are_required_when_a_protocol_uses_sms(production, study_engine, clock):
    environ = without(production, "TWILIO_AUTH_TOKEN", "TWILIO_FROM")
    found = check(environ, study_engine, clock, "sms")
    assert found.status == FAIL
    assert "TWILIO_AUTH_TOKEN" in found.message and "TWILIO_FROM" in found.message
    development = check({**environ, "FLOURISH_ENV": "development"}, study_engine, clock, "sms")
    assert development.status == WARN and "console" in development.message


def test_without_studies_no_channel_credentials_are_needed(production, empty_engine, clock):
    environ = without(production, "TWILIO_ACCOUNT_SID", "SMTP_HOST")
    checks = {c.name: c for c in diagnose(environ, clock.now(), engine=empty_engine)}
    assert checks["sms"].status == OK and "no protocol uses SMS" in checks["sms"].message
    assert checks["email"].status == OK and checks["assistants"].status == OK


@pytest.mark.parametrize(
    ("missing", "status", "says"),
    [
        ("SMTP_HOST", FAIL, "SMTP_HOST is not set"),
        ("SMTP_PASSWORD", FAIL, "without SMTP_PASSWORD"),
        ("SMTP_FROM", WARN, "SMTP_FROM is not set"),
    ],
)
def test_email_settings_when_a_protocol_uses_email(
    production, study_engine, clock, missing, status, says
):
    found = check(without(production, missing), study_engine, clock, "email")
    assert found.status == status and says in found.message


def test_each_arm_with_an_assistant_needs_its_api_key(production, study_engine, clock):
    found = check(
        without(production, "FLOURISH_ARM_REFLECTIVE_API_KEY"), study_engine, clock, "assistants"
    )
    assert found.status == FAIL
    assert "arm reflective: FLOURISH_ARM_REFLECTIVE_API_KEY" in found.message
    assert "instruct" not in found.message
    assert "api_key_env" in found.fix


def test_production_needs_each_studys_allocation_seed(production, study_engine, clock):
    missing = check(
        without(production, "FLOURISH_ALLOCATION_SEED"), study_engine, clock, "allocation-seed"
    )
    assert missing.status == FAIL and "FLOURISH_ALLOCATION_SEED" in missing.message
    short = check(
        {**production, "FLOURISH_ALLOCATION_SEED": "short"}, study_engine, clock, "allocation-seed"
    )
    assert short.status == FAIL and "shorter than 16" in short.message


# --- instance folder and scheduler -------------------------------------------------------------


def test_an_instance_folder_that_cannot_be_written_fails_for_sqlite(
    production, study_engine, clock, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    found = check(
        {**production, "FLOURISH_INSTANCE_PATH": str(blocker / "instance")},
        study_engine,
        clock,
        "instance",
    )
    assert found.status == FAIL and "not writable" in found.message


def test_the_scheduler_heartbeat_must_be_recent(production, study_engine, clock, tmp_path):
    assert check(production, study_engine, clock, "scheduler").status == OK
    clock.advance(timedelta(minutes=10))
    stale = check(production, study_engine, clock, "scheduler")
    assert stale.status == FAIL and "600 s old" in stale.message
    assert "flourish scheduler" in stale.fix


def test_a_scheduler_that_never_ran_is_a_warning(production, empty_engine, clock):
    found = check(production, empty_engine, clock, "scheduler")
    assert found.status == WARN and "no scheduler has ever run" in found.message
