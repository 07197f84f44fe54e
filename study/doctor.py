"""`flourish doctor`: is this deployment configured to run its studies, and if not, what to fix.

Each check looks at one thing and answers `ok`, `warn` or `fail` with what it found and, unless
it is fine, what to do about it. `fail` means something will not work (or is unsafe) as
configured; `warn` means it works but is probably not what was meant, or could not be checked.
What counts as a failure depends on `FLOURISH_ENV`: a laptop without Twilio credentials sends
SMS to the console, which is fine in development and a failure in production.

The checks read the environment and the database and never print a secret (key *names*, not
values). They change nothing but a temporary file that proves the instance folder writable (and,
outside production, the development keys every command creates there when they are missing).
What the protocols need (SMS, email, assistants, an allocation seed) is read from the protocol
version in force of every study registered in the database.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from . import migrate
from .config import ConfigError, Settings
from .health import health_report
from .models import Study
from .protocol import Protocol
from .protocol.registry import current_version, load_version

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_SECRET_LENGTH = 32
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
# Words that give away a value copied from an example file rather than generated.
PLACEHOLDERS = ("change-me", "changeme", "replace-me", "example", "xxxxxxxx")
# Settings read as text, which cannot be malformed (see `_settings`).
TEXT_SETTINGS = (
    "FLOURISH_INSTANCE_PATH",
    "FLOURISH_DATABASE_URL",
    "FLOURISH_PUBLIC_URL",
    "FLOURISH_HOST",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
    "SMTP_HOST",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_FROM",
)


@dataclass(frozen=True)
class Check:
    """One finding: `name` of the check, `status` (ok/warn/fail), what was found, what to do."""

    name: str
    status: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class StudyNeeds:
    """What the protocols in force ask of the deployment."""

    channels: frozenset[str] = frozenset()
    # (study slug, arm key, environment variable) for every arm with an assistant.
    assistant_keys: tuple[tuple[str, str, str], ...] = ()
    protocols: tuple[Protocol, ...] = ()


def diagnose(
    environ: Mapping[str, str], now: datetime, *, engine: Engine | None = None
) -> list[Check]:
    """Every check, in the order an operator fixes things: settings, database, then the rest.

    `engine` defaults to one built from the settings (and disposed of afterwards).
    """
    checks: list[Check] = []
    settings, problem = _settings(environ)
    production = settings.is_production
    checks.append(_environment(settings, problem))
    checks += _keys(environ, settings)
    own_engine = engine is None
    if own_engine:
        from .db import make_engine

        try:
            engine = make_engine(settings.database_url)
        except Exception as exc:  # an unknown scheme or driver, a malformed URL
            engine = None
            database = Check(
                "database",
                FAIL,
                f"FLOURISH_DATABASE_URL cannot be used: {type(exc).__name__}",
                "give an URL like postgresql://user:password@host/database",
            )
    try:
        if engine is not None:
            database = _database(engine, production)
        checks.append(database)
        ready = database.status != FAIL
        needs = _needs(engine) if ready else None
        checks.append(_public_url(environ, settings))
        checks.append(_instance(settings))
        checks += _channels(settings, needs)
        checks += _assistants(environ, production, needs)
        checks += _seeds(environ, production, needs)
        checks.append(_scheduler(engine, now, settings) if ready else _unknown("scheduler"))
    finally:
        if own_engine and engine is not None:
            engine.dispose()
    return checks


def worst(checks: list[Check]) -> str:
    """The overall status: `fail` if any check failed, else `warn` if any warned, else `ok`."""
    statuses = {check.status for check in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


# --- settings and keys --------------------------------------------------------------------------


def _settings(environ: Mapping[str, str]) -> tuple[Settings, str]:
    """The settings, or (when the environment is refused) settings good enough to go on
    checking everything else, with the reason they were refused."""
    try:
        return Settings.from_env(environ), ""
    except ConfigError as exc:
        # Placeholders stand in for what was refused so the other checks can still run; the
        # keys check reports on the real values from `environ`.
        env = environ.get("FLOURISH_ENV", "development")
        stand_in = {
            "env": env if env in ("development", "test", "production") else "production",
            "secret_key": "doctor-stand-in-" + "x" * MIN_SECRET_LENGTH,
            "pii_key": Fernet.generate_key().decode(),
        }
        try:
            return Settings.from_env(environ, **stand_in), str(exc)
        except ConfigError:  # a malformed number, say: keep only what needs no parsing
            text_only = {k: v for k, v in environ.items() if k in TEXT_SETTINGS}
            return Settings.from_env(text_only, **stand_in), str(exc)


def _environment(settings: Settings, problem: str) -> Check:
    if problem:
        return Check("settings", FAIL, f"the environment is refused: {problem}", "fix it as said")
    if settings.is_production:
        return Check("settings", OK, "FLOURISH_ENV=production")
    return Check(
        "settings",
        WARN,
        f"FLOURISH_ENV={settings.env}: development keys and demo accounts are allowed",
        "set FLOURISH_ENV=production on a server that enrols real participants",
    )


def _keys(environ: Mapping[str, str], settings: Settings) -> list[Check]:
    production = settings.is_production
    generate = "generate keys with `flourish keys generate`; put them in the service environment"
    checks = []
    pairs = (("FLOURISH_SECRET_KEY", "dev-secret-key"), ("FLOURISH_PII_KEY", "dev-pii-key"))
    for name, file in pairs:
        value = environ.get(name, "")
        dev_file = settings.instance_path / file
        label = name.removeprefix("FLOURISH_").lower().replace("_", "-")
        if not value:
            if production:
                checks.append(Check(label, FAIL, f"{name} is not set", generate))
            else:
                checks.append(Check(label, OK, f"{name} not set: using {dev_file} (development)"))
            continue
        if dev_file.is_file() and dev_file.read_text().strip() == value:
            status = FAIL if production else OK
            checks.append(
                Check(
                    label,
                    status,
                    f"{name} is the development key kept in {dev_file}",
                    generate if production else "",
                )
            )
            continue
        if any(word in value.lower() for word in PLACEHOLDERS):
            checks.append(
                Check(
                    label,
                    FAIL if production else WARN,
                    f"{name} looks like a placeholder from an example file",
                    generate,
                )
            )
            continue
        if name == "FLOURISH_SECRET_KEY" and len(value) < MIN_SECRET_LENGTH:
            checks.append(
                Check(
                    label,
                    FAIL if production else WARN,
                    f"{name} is {len(value)} characters; at least {MIN_SECRET_LENGTH} needed",
                    generate,
                )
            )
            continue
        if name == "FLOURISH_PII_KEY":
            try:
                Fernet(value.encode())
            except (ValueError, TypeError):
                checks.append(Check(label, FAIL, f"{name} is not a valid Fernet key", generate))
                continue
        checks.append(Check(label, OK, f"{name} is set"))
    return checks


# --- database -----------------------------------------------------------------------------------


def _database(engine: Engine, production: bool) -> Check:
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = migrate.current_revision(engine)
    except Exception as exc:  # any driver's failure to connect means the same to an operator
        return Check(
            "database",
            FAIL,
            f"cannot reach {url}: {type(exc).__name__}",
            "check FLOURISH_DATABASE_URL, that the server runs and that the role may log in",
        )
    head = migrate.head_revision()
    if revision != head:
        return Check(
            "database",
            FAIL,
            f"{url} is at revision {revision or 'none (empty)'}, this release needs {head}",
            "run `flourish db upgrade` (once per release, before starting the new version)",
        )
    if production and engine.dialect.name == "sqlite":
        return Check(
            "database",
            WARN,
            f"{url} is SQLite, at {head}",
            "fine for a pilot on one host; use PostgreSQL for several web hosts or schedulers",
        )
    return Check("database", OK, f"{url} reachable, at the newest revision {head}")


def _needs(engine: Engine) -> StudyNeeds:
    channels: set[str] = set()
    keys, protocols = [], []
    with Session(engine) as session:
        for study in session.exec(select(Study).order_by(Study.slug)):
            version = current_version(session, study.id)
            if version is None:
                continue
            protocol = load_version(version)
            protocols.append(protocol)
            model = protocol.model
            channels.update(model.channels.allowed)
            for arm in model.arms:
                if arm.assistant is not None:
                    keys.append((study.slug, arm.key, arm.assistant.api_key_env))
    return StudyNeeds(frozenset(channels), tuple(keys), tuple(protocols))


# --- public URL and instance folder -----------------------------------------------------------


def _public_url(environ: Mapping[str, str], settings: Settings) -> Check:
    raw = environ.get("FLOURISH_PUBLIC_URL", "")
    fix = (
        "set FLOURISH_PUBLIC_URL to the https address participants and Twilio use, "
        "e.g. https://study.example.org (no path)"
    )
    if not raw:
        if settings.is_production:
            return Check("public-url", FAIL, "FLOURISH_PUBLIC_URL is not set", fix)
        return Check("public-url", OK, f"not set: links use {settings.public_url} (development)")
    parts = urlsplit(settings.public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check("public-url", FAIL, f"{raw!r} is not an http(s) URL", fix)
    if settings.is_production and parts.scheme != "https":
        return Check(
            "public-url",
            FAIL,
            f"{settings.public_url} is not https: links and logins go in clear",
            fix,
        )
    if settings.is_production and parts.hostname in LOCAL_HOSTS:
        return Check("public-url", FAIL, f"{settings.public_url} is not reachable by anyone", fix)
    if parts.path or parts.query:
        return Check(
            "public-url",
            WARN,
            f"{settings.public_url} has a path; Flourish is served at the root",
            fix,
        )
    return Check("public-url", OK, settings.public_url)


def _instance(settings: Settings) -> Check:
    folder = settings.instance_path
    fix = (
        f"create {folder} and give the service's user write access (or set FLOURISH_INSTANCE_PATH)"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        status = FAIL if settings.database_url.startswith("sqlite") else WARN
        return Check("instance", status, f"{folder} is not writable: {exc.strerror or exc}", fix)
    return Check("instance", OK, f"{folder} is writable")


# --- what the protocols need ----------------------------------------------------------------


def _unknown(name: str) -> Check:
    return Check(name, WARN, "not checked: the database is not ready", "fix the database first")


def _channels(settings: Settings, needs: StudyNeeds | None) -> list[Check]:
    if needs is None:
        return [_unknown("sms"), _unknown("email")]
    production = settings.is_production
    console = FAIL if production else WARN
    checks = []
    if "sms" in needs.channels:
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            )
            if not value
        ]
        if not (settings.twilio_from or settings.twilio_messaging_service_sid):
            missing.append("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            checks.append(
                Check(
                    "sms",
                    console,
                    "a protocol uses SMS but "
                    + ", ".join(missing)
                    + " not set: SMS would go to the console",
                    "set the Twilio credentials from the Twilio console",
                )
            )
        elif not settings.twilio_account_sid.startswith("AC"):
            checks.append(
                Check(
                    "sms",
                    WARN,
                    "TWILIO_ACCOUNT_SID does not start with AC",
                    "use the Account SID (AC...), not an API key SID",
                )
            )
        else:
            checks.append(
                Check(
                    "sms",
                    OK,
                    "Twilio configured; webhooks at "
                    f"{settings.public_url}/twilio/sms and /twilio/status",
                )
            )
    else:
        checks.append(Check("sms", OK, "no protocol uses SMS"))
    if "email" in needs.channels:
        if not settings.smtp_host:
            checks.append(
                Check(
                    "email",
                    console,
                    "a protocol uses email but SMTP_HOST is not set: email would go to the console",
                    "set SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD and SMTP_FROM",
                )
            )
        elif settings.smtp_user and not settings.smtp_password:
            checks.append(
                Check("email", FAIL, "SMTP_USER is set without SMTP_PASSWORD", "set SMTP_PASSWORD")
            )
        elif not settings.smtp_from:
            checks.append(
                Check(
                    "email",
                    WARN,
                    f"SMTP_FROM is not set: mail comes from flourish@{settings.smtp_host}",
                    "set SMTP_FROM",
                )
            )
        else:
            checks.append(Check("email", OK, f"SMTP via {settings.smtp_host}:{settings.smtp_port}"))
    else:
        checks.append(Check("email", OK, "no protocol uses email"))
    return checks


def _assistants(
    environ: Mapping[str, str], production: bool, needs: StudyNeeds | None
) -> list[Check]:
    if needs is None:
        return [_unknown("assistants")]
    if not needs.assistant_keys:
        return [Check("assistants", OK, "no arm has an assistant")]
    missing = [(slug, arm, env) for slug, arm, env in needs.assistant_keys if not environ.get(env)]
    if not missing:
        names = sorted({env for _, _, env in needs.assistant_keys})
        return [Check("assistants", OK, "API keys set: " + ", ".join(names))]
    listed = "; ".join(f"{slug} arm {arm}: {env}" for slug, arm, env in missing)
    return [
        Check(
            "assistants",
            FAIL if production else WARN,
            f"assistant API keys not set ({listed})",
            "set each variable to the key of that arm's provider (the protocol names it in "
            "assistant.api_key_env)",
        )
    ]


def _seeds(environ: Mapping[str, str], production: bool, needs: StudyNeeds | None) -> list[Check]:
    from .randomization.design import AllocationError
    from .randomization.seed import allocation_seed

    if needs is None:
        return [_unknown("allocation-seed")]
    problems = []
    for protocol in needs.protocols:
        name = protocol.model.allocation.seed_env
        if production:
            try:  # the same rules the allocator applies when it enrols someone
                allocation_seed(protocol, environ)
            except AllocationError as exc:
                problems.append(f"{protocol.slug}: {exc}")
        elif not (name and environ.get(name)):
            problems.append(f"{protocol.slug}: {name or 'no seed_env'} not set")
    if not problems:
        return [Check("allocation-seed", OK, f"{len(needs.protocols)} study seed(s) set")]
    return [
        Check(
            "allocation-seed",
            FAIL if production else WARN,
            "; ".join(problems),
            "set the variable each protocol names in allocation.seed_env to a long random "
            "secret, and keep it: it re-derives every allocation",
        )
    ]


# --- scheduler ----------------------------------------------------------------------------------


def _scheduler(engine: Engine, now: datetime, settings: Settings) -> Check:
    report = health_report(engine, now, settings.scheduler_stale_seconds)["scheduler"]
    start = "start `flourish scheduler` (systemctl start flourish-scheduler, or the container)"
    if report["status"] == "missing":
        return Check("scheduler", WARN, "no scheduler has ever run against this database", start)
    if report["status"] == "stale":
        return Check(
            "scheduler",
            FAIL if settings.is_production else WARN,
            f"the last scheduler heartbeat is {report['age_seconds']:.0f} s old "
            f"(more than {settings.scheduler_stale_seconds:g} s): invitations are not going out",
            start + "; see its log",
        )
    return Check("scheduler", OK, f"heartbeat {report['age_seconds']:.0f} s ago")
