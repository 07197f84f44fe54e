"""`flourish run`, `serve`, `scheduler` and `keys generate`: the processes of a deployment.

- `run`: development all-in-one, web server and ticker in one process (`make run` adds --demo).
- `serve`: the web server only, for production behind a proxy (or gunicorn with `study.wsgi`).
- `scheduler`: the ticker only; run one or more of these in production (docs/operations.md).
"""

from __future__ import annotations

import logging
import secrets
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from .. import accounts, migrate
from ..clock import SystemClock
from ..config import ConfigError, Settings
from ..db import unit_of_work
from ..scheduler import Ticker, standard_tasks
from . import CliContext, pass_cli

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@flourish.local"
DEMO_NAME = "Demo administrator"
DEMO_ACTOR = "cli:flourish-run-demo"
LOG_LEVELS = ("debug", "info", "warning", "error")

host_option = click.option("--host", default=None, help="Interface to listen on [FLOURISH_HOST].")
port_option = click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port [FLOURISH_PORT]."
)
log_level_option = click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
)


@click.command("run")
@host_option
@port_option
@click.option(
    "--demo/--no-demo",
    default=False,
    help=f"Ensure an admin account {DEMO_EMAIL} with a fresh random password (not in production).",
)
@log_level_option
@pass_cli
def run(cli: CliContext, host: str | None, port: int | None, demo: bool, log_level: str) -> None:
    """Serve the study and tick the scheduler in one process (development).

    Stops cleanly on Ctrl-C or SIGTERM. In production run `flourish serve` and
    `flourish scheduler` as separate processes instead.
    """
    _configure_logging(log_level)
    settings = _settings(cli, host, port)
    if demo and settings.is_production:
        raise click.ClickException(
            "--demo creates an admin account with a printed password and is refused when "
            "FLOURISH_ENV=production"
        )
    engine = cli.engine
    _require_migrated(engine)
    # Bind first: a taken port should not cost the demo account its printed password.
    server = _make_server(settings, engine, threads=8)
    ticker = Ticker(
        engine,
        SystemClock(),
        standard_tasks(settings),
        interval_seconds=settings.scheduler_tick_seconds,
    )
    try:
        password = ensure_demo_account(engine) if demo else None
        ticker.start()
        url = _display_url(settings.host, server.effective_port)
        rule = "=" * 72
        click.echo(rule)
        click.echo(f"  Flourish is running at {url}  (Ctrl-C to stop)")
        click.echo(f"  database:  {engine.url.render_as_string(hide_password=True)}")
        click.echo(f"  scheduler: in this process, ticking every {ticker.interval_seconds:g} s")
        if password is not None:
            click.echo("")
            click.echo("  Demo sign-in (a new password is set at every start):")
            click.echo(f"    URL:      {url}/login")
            click.echo(f"    email:    {DEMO_EMAIL}")
            click.echo(f"    password: {password}")
        click.echo(rule)
        with _terminate_as_interrupt():
            server.run()
    finally:
        ticker.stop()
        server.close()
        click.echo("Flourish stopped")


@click.command("serve")
@host_option
@port_option
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--trusted-proxy",
    default=None,
    metavar="ADDRESS",
    help="Address of the reverse proxy whose X-Forwarded-For/-Proto headers are believed.",
)
@log_level_option
@pass_cli
def serve(
    cli: CliContext,
    host: str | None,
    port: int | None,
    threads: int,
    trusted_proxy: str | None,
    log_level: str,
) -> None:
    """Serve the study's web pages only, with waitress (production; no scheduler here)."""
    _configure_logging(log_level)
    settings = _settings(cli, host, port)
    engine = cli.engine
    _require_migrated(engine)
    proxy = {}
    if trusted_proxy:
        proxy = {
            "trusted_proxy": trusted_proxy,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"},
        }
    server = _make_server(settings, engine, threads=threads, **proxy)
    click.echo(
        f"Flourish web server at {_display_url(settings.host, server.effective_port)} "
        f"({threads} threads; public URL {settings.public_url})"
    )
    try:
        with _terminate_as_interrupt():
            server.run()
    finally:
        server.close()


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run a single tick and exit (for cron or a check).")
@log_level_option
@pass_cli
def scheduler(cli: CliContext, once: bool, log_level: str) -> None:
    """Run the ticker in the foreground until SIGTERM or Ctrl-C.

    Any number of these may run against one database: every tick's work is safe to run
    concurrently, and they share the `scheduler` heartbeat that /healthz reads.
    """
    _configure_logging(log_level)
    settings = cli.settings
    engine = cli.engine
    _require_migrated(engine)
    ticker = Ticker(
        engine,
        SystemClock(),
        standard_tasks(settings),
        interval_seconds=settings.scheduler_tick_seconds,
    )
    if once:
        outcome = ticker.tick()
        if outcome is None or outcome.failed:
            raise click.ClickException("the tick did not complete cleanly; see the log above")
        click.echo(f"ticked at {outcome.now.isoformat()}")
        return

    stop = threading.Event()

    def request_stop(signum, _frame):
        log.info("received %s; finishing the current tick", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    ticker.start()
    click.echo(f"Flourish scheduler ticking every {ticker.interval_seconds:g} s (Ctrl-C to stop)")
    try:
        while not stop.wait(timeout=1.0):
            pass
    finally:
        ticker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        click.echo(
            f"Flourish scheduler stopped after {ticker.ticks} ticks "
            f"({sum(ticker.failures.values())} task failures, "
            f"{ticker.heartbeat_failures} heartbeat failures)"
        )


@click.group("keys")
def keys_group() -> None:
    """Secrets a production deployment needs."""


@keys_group.command("generate")
def generate_keys() -> None:
    """Print a fresh FLOURISH_SECRET_KEY and FLOURISH_PII_KEY as shell `export` lines.

    Store them in your secret manager or the service's environment file. Losing the PII key
    makes every stored contact detail unreadable; changing the secret key signs everyone out.
    """
    secret_key = secrets.token_urlsafe(48)
    pii_key = Fernet.generate_key().decode()
    click.echo(f"export FLOURISH_SECRET_KEY={shlex.quote(secret_key)}")
    click.echo(f"export FLOURISH_PII_KEY={shlex.quote(pii_key)}")
    click.echo(
        "# Keep FLOURISH_PII_KEY safe and backed up: without it, contact details cannot be read.",
        err=True,
    )


# --- helpers ------------------------------------------------------------------------------------


def _settings(cli: CliContext, host: str | None, port: int | None) -> Settings:
    """Settings with --host/--port applied, so a default public URL follows them."""
    overrides = dict(cli.overrides)
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    try:
        return Settings.from_env(**overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _require_migrated(engine: Engine) -> None:
    """Refuse to start on a database that is unreachable or not at the newest migration."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        revision = migrate.current_revision(engine)
    except Exception as exc:
        raise click.ClickException(f"cannot reach the database {url}: {exc}") from exc
    head = migrate.head_revision()
    if revision != head:
        raise click.ClickException(
            f"the database {url} is at revision {revision or 'none (empty)'} but this version "
            f"of Flourish needs {head}; run `flourish db upgrade` first"
        )


def ensure_demo_account(engine: Engine) -> str:
    """Make sure the demo admin exists, active, with a new random password; return it."""
    password = secrets.token_urlsafe(15)
    with unit_of_work(engine) as session:
        researcher = accounts.find_researcher(session, DEMO_EMAIL)
        if researcher is None:
            accounts.create_researcher(
                session,
                email=DEMO_EMAIL,
                password=password,
                role="admin",
                name=DEMO_NAME,
                actor=DEMO_ACTOR,
            )
            return password
        if not researcher.is_active:
            accounts.reactivate(session, researcher, actor=DEMO_ACTOR)
        if researcher.role != "admin":
            accounts.set_role(session, researcher, "admin", actor=DEMO_ACTOR)
        accounts.set_password(session, researcher, password, actor=DEMO_ACTOR)
    return password


def _make_server(settings: Settings, engine: Engine, *, threads: int, **adjustments):
    """A bound (not yet running) waitress server for the app; fails early if the port is taken."""
    from waitress import create_server

    from ..web import create_app

    app = create_app(settings, engine=engine)
    try:
        return create_server(
            app, host=settings.host, port=settings.port, threads=threads, **adjustments
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from exc


def _display_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop a waitress loop the way Ctrl-C does (it returns on KeyboardInterrupt)."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level.lower() != "debug":
        # APScheduler announces every job run and Alembic every revision check at INFO; our own
        # logs say what matters.
        for chatty in ("apscheduler", "alembic"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


COMMANDS = [run, serve, scheduler, keys_group]
