"""Configuration read from environment variables, with documented defaults.

Every setting is listed in the README's configuration table. Nothing here is global state: the
app factory, the CLI and the scheduler each build a `Settings` and pass it on.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

ENVIRONMENTS = ("development", "test", "production")


class ConfigError(RuntimeError):
    """Raised when the environment does not describe a deployment that may start."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    instance_path: Path = Path("instance")
    database_url: str = ""
    secret_key: str = ""
    pii_key: str = ""
    public_url: str = "http://127.0.0.1:5000"
    host: str = "127.0.0.1"
    port: int = 5000
    scheduler_tick_seconds: float = 15.0
    scheduler_stale_seconds: float = 120.0
    sms_per_second: float = 1.0
    email_per_second: float = 5.0
    send_max_attempts: int = 5
    send_retry_seconds: float = 30.0
    assistant_timeout_seconds: float = 60.0
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_messaging_service_sid: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_starttls: bool = True

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def sms_backend(self) -> str:
        """`twilio` when Twilio credentials are configured, else `console`."""
        if self.twilio_account_sid and self.twilio_auth_token:
            return "twilio"
        return "console"

    @property
    def email_backend(self) -> str:
        """`smtp` when an SMTP host is configured, else `console`."""
        return "smtp" if self.smtp_host else "console"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Build settings from `environ` (default `os.environ`); `overrides` win over both.

        In production a missing `FLOURISH_SECRET_KEY` or `FLOURISH_PII_KEY` is an error. In
        development and test, keys are generated once and kept under the instance folder so that
        sessions and encrypted contact details survive a restart.
        """
        env_vars = os.environ if environ is None else environ
        values: dict = {
            "env": env_vars.get("FLOURISH_ENV", "development"),
            "instance_path": Path(env_vars.get("FLOURISH_INSTANCE_PATH", "instance")),
            "database_url": env_vars.get("FLOURISH_DATABASE_URL", ""),
            "secret_key": env_vars.get("FLOURISH_SECRET_KEY", ""),
            "pii_key": env_vars.get("FLOURISH_PII_KEY", ""),
            "public_url": env_vars.get("FLOURISH_PUBLIC_URL", ""),
            "host": env_vars.get("FLOURISH_HOST", "127.0.0.1"),
            "port": _int(env_vars, "FLOURISH_PORT", 5000),
            "scheduler_tick_seconds": _float(env_vars, "FLOURISH_SCHEDULER_TICK_SECONDS", 15.0),
            "scheduler_stale_seconds": _float(env_vars, "FLOURISH_SCHEDULER_STALE_SECONDS", 120.0),
            "sms_per_second": _float(env_vars, "FLOURISH_SMS_PER_SECOND", 1.0),
            "email_per_second": _float(env_vars, "FLOURISH_EMAIL_PER_SECOND", 5.0),
            "send_max_attempts": _int(env_vars, "FLOURISH_SEND_MAX_ATTEMPTS", 5),
            "send_retry_seconds": _float(env_vars, "FLOURISH_SEND_RETRY_SECONDS", 30.0),
            "assistant_timeout_seconds": _float(env_vars, "FLOURISH_ASSISTANT_TIMEOUT", 60.0),
            "twilio_account_sid": env_vars.get("TWILIO_ACCOUNT_SID", ""),
            "twilio_auth_token": env_vars.get("TWILIO_AUTH_TOKEN", ""),
            "twilio_from": env_vars.get("TWILIO_FROM", ""),
            "twilio_messaging_service_sid": env_vars.get("TWILIO_MESSAGING_SERVICE_SID", ""),
            "smtp_host": env_vars.get("SMTP_HOST", ""),
            "smtp_port": _int(env_vars, "SMTP_PORT", 587),
            "smtp_user": env_vars.get("SMTP_USER", ""),
            "smtp_password": env_vars.get("SMTP_PASSWORD", ""),
            "smtp_from": env_vars.get("SMTP_FROM", ""),
            "smtp_starttls": env_vars.get("SMTP_STARTTLS", "true").lower() in ("1", "true", "yes"),
        }
        values.update(overrides)
        if values["env"] not in ENVIRONMENTS:
            raise ConfigError(
                f"FLOURISH_ENV={values['env']!r} is not one of {', '.join(ENVIRONMENTS)}"
            )
        instance = Path(values["instance_path"]).resolve()
        values["instance_path"] = instance
        if not values["database_url"]:
            values["database_url"] = f"sqlite:///{instance / 'flourish.sqlite3'}"
        if not values["public_url"]:
            values["public_url"] = f"http://{values['host']}:{values['port']}"
        values["public_url"] = values["public_url"].rstrip("/")

        if values["env"] == "production":
            missing = [
                name
                for name, key in (
                    ("FLOURISH_SECRET_KEY", "secret_key"),
                    ("FLOURISH_PII_KEY", "pii_key"),
                )
                if not values[key]
            ]
            if missing:
                raise ConfigError(
                    "production mode refuses to start without "
                    + " and ".join(missing)
                    + "; generate them with `flourish keys generate`"
                )
            if len(values["secret_key"]) < 32:
                raise ConfigError("FLOURISH_SECRET_KEY must be at least 32 characters")
        else:
            if not values["secret_key"]:
                values["secret_key"] = _instance_key(instance, "dev-secret-key", _token)
            if not values["pii_key"]:
                values["pii_key"] = _instance_key(instance, "dev-pii-key", _fernet_key)
        _check_fernet(values["pii_key"])
        return cls(**values)


def _token() -> str:
    return secrets.token_urlsafe(48)


def _fernet_key() -> str:
    return Fernet.generate_key().decode()


def _instance_key(instance: Path, name: str, make) -> str:
    """Read a development key from the instance folder, creating it (mode 0600) the first time."""
    path = instance / name
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _check_fernet(key: str) -> None:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "FLOURISH_PII_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes); "
            "generate one with `flourish keys generate`"
        ) from exc


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from exc


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc
