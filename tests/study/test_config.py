"""Configuration comes from the environment: safe defaults on a laptop, none in production."""

from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from study.config import ConfigError, Settings

GOOD_SECRET = "s" * 40


def test_development_defaults_to_an_sqlite_file_under_the_instance_folder(tmp_path):
    settings = Settings.from_env({"FLOURISH_INSTANCE_PATH": str(tmp_path)})
    assert settings.env == "development"
    assert settings.database_url == f"sqlite:///{tmp_path / 'flourish.sqlite3'}"
    assert settings.public_url == "http://127.0.0.1:5000"
    assert settings.sms_backend == "console"
    assert settings.email_backend == "console"


def test_development_keys_are_generated_once_and_kept_private(tmp_path):
    first = Settings.from_env({"FLOURISH_INSTANCE_PATH": str(tmp_path)})
    second = Settings.from_env({"FLOURISH_INSTANCE_PATH": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.pii_key == second.pii_key
    Fernet(first.pii_key.encode())
    for name in ("dev-secret-key", "dev-pii-key"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, f"{name} is readable by others: {oct(mode)}"


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "FLOURISH_SECRET_KEY and FLOURISH_PII_KEY"),
        ({"FLOURISH_SECRET_KEY": GOOD_SECRET}, "FLOURISH_PII_KEY"),
        ({"FLOURISH_PII_KEY": Fernet.generate_key().decode()}, "FLOURISH_SECRET_KEY"),
    ],
)
def test_production_refuses_to_start_without_its_keys(tmp_path, environ, missing):
    environ = {"FLOURISH_ENV": "production", "FLOURISH_INSTANCE_PATH": str(tmp_path), **environ}
    with pytest.raises(ConfigError, match=f"without {missing}"):
        Settings.from_env(environ)
    assert not (tmp_path / "dev-secret-key").exists(), "production must never generate keys"


def test_production_starts_with_its_keys_and_rejects_a_short_secret(tmp_path):
    pii = Fernet.generate_key().decode()
    base = {"FLOURISH_ENV": "production", "FLOURISH_INSTANCE_PATH": str(tmp_path)}
    settings = Settings.from_env(
        {**base, "FLOURISH_SECRET_KEY": GOOD_SECRET, "FLOURISH_PII_KEY": pii}
    )
    assert settings.is_production
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({**base, "FLOURISH_SECRET_KEY": "short", "FLOURISH_PII_KEY": pii})


def test_a_malformed_pii_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="FLOURISH_PII_KEY is not a valid Fernet key"):
        Settings.from_env({"FLOURISH_INSTANCE_PATH": str(tmp_path), "FLOURISH_PII_KEY": "nope"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FLOURISH_PORT", "eighty", "FLOURISH_PORT='eighty' is not a whole number"),
        ("FLOURISH_SCHEDULER_TICK_SECONDS", "soon", "is not a number"),
        ("FLOURISH_ENV", "staging", "is not one of development, test, production"),
    ],
)
def test_malformed_values_are_reported_by_name(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"FLOURISH_INSTANCE_PATH": str(tmp_path), name: value})


def test_twilio_and_smtp_are_used_when_configured(tmp_path):
    settings = Settings.from_env(
        {
            "FLOURISH_INSTANCE_PATH": str(tmp_path),
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "SMTP_HOST": "mail.example.org",
            "FLOURISH_PUBLIC_URL": "https://study.example.org/",
        }
    )
    assert settings.sms_backend == "twilio"
    assert settings.email_backend == "smtp"
    assert settings.public_url == "https://study.example.org"


def test_the_assistant_timeout_comes_from_the_environment_into_the_app(tmp_path):
    from study.web import create_app

    settings = Settings.from_env(
        {"FLOURISH_ASSISTANT_TIMEOUT": "12.5"}, instance_path=tmp_path / "instance"
    )
    assert settings.assistant_timeout_seconds == 12.5
    assert Settings.from_env({}, instance_path=tmp_path).assistant_timeout_seconds == 60.0
    app = create_app(settings)
    assert app.config["FLOURISH_ASSISTANT_TIMEOUT"] == 12.5
