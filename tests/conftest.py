"""Fixtures shared by the whole suite: settings, databases (SQLite and PostgreSQL), the clock,
the app and logged-in clients.

Databases are migrated once per test session into a template; each test gets a fresh copy (a
file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on PostgreSQL), so tests are isolated and fast.
PostgreSQL tests need FLOURISH_TEST_POSTGRES_URL (a role that may create databases). Locally they
are skipped without it; under CI=true a missing server is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from study import migrate
from study.clock import FakeClock
from study.config import Settings
from study.db import make_engine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get("FLOURISH_TEST_POSTGRES_URL", "")
TEST_PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(config, items):
    if IN_CI:
        return
    if not POSTGRES_URL:
        skip = pytest.mark.skip(reason="FLOURISH_TEST_POSTGRES_URL is not set (required under CI)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


def pytest_runtest_setup(item):
    if IN_CI and "postgres" in item.keywords and not POSTGRES_URL:
        pytest.fail("CI=true but FLOURISH_TEST_POSTGRES_URL is not set: PostgreSQL tests must run")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Under CI nothing may be skipped: a skip there is a failure of the harness, made visible.
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may be skipped: {report.longrepr}"
    return report


# --- databases --------------------------------------------------------------------------------


class SqliteTemplate:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.sqlite3"
        engine = make_engine(f"sqlite:///{self.path}")
        migrate.upgrade(engine)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()

    def fresh_url(self, directory: Path) -> str:
        target = directory / f"db-{uuid.uuid4().hex[:8]}.sqlite3"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"


class PostgresTemplate:
    def __init__(self, admin_url: str, worker: str) -> None:
        self.admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.base_url = make_url(self.admin.url.render_as_string(hide_password=False))
        self.prefix = f"flourish_test_{worker}_{os.getpid()}"
        self.template = f"{self.prefix}_tpl"
        self.created: list[str] = []
        self._create(self.template)
        engine = make_engine(self._url(self.template))
        migrate.upgrade(engine)
        engine.dispose()

    def _url(self, name: str) -> str:
        return self.base_url.set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> None:
        clause = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)

    def fresh_url(self) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self._create(name, self.template)
        return self._url(name)

    def empty_url(self) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self._create(name)
        return self._url(name)

    def drop_all(self) -> None:
        """Drop the test databases. A leftover database is untidy, not a test failure, so a
        database still held by a straggling connection is reported and left behind."""
        import warnings

        with self.admin.connect() as connection:
            for name in reversed(self.created):
                try:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                except sa_exc.DBAPIError as exc:
                    warnings.warn(f"could not drop test database {name}: {exc.orig}", stacklevel=1)
        self.admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template():
    if not POSTGRES_URL:
        pytest.skip("FLOURISH_TEST_POSTGRES_URL is not set")
    template = PostgresTemplate(POSTGRES_URL, os.environ.get("PYTEST_XDIST_WORKER", "main"))
    yield template
    template.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """A freshly migrated database; tests using it run once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_template").fresh_url(tmp_path)
    return request.getfixturevalue("postgres_template").fresh_url()


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_template, tmp_path):
    """A freshly migrated SQLite database, for tests whose subject is not the database engine."""
    engine = make_engine(sqlite_template.fresh_url(tmp_path))
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as session:
        yield session


# --- clock, settings, app ------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """A frozen clock at a Monday morning in UTC; tests advance it explicitly."""
    return FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env(
        {},
        env="test",
        instance_path=tmp_path / "instance",
        secret_key="test-secret-key-" + "x" * 32,
        pii_key=Fernet.generate_key().decode(),
        public_url="https://study.example.org",
        database_url=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    )


@pytest.fixture
def app(settings, sqlite_engine, clock):
    from study.web import create_app

    app = create_app(settings, engine=sqlite_engine, clock=clock)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_researcher(app):
    """Create a researcher with a role; returns the model. Password is TEST_PASSWORD."""
    from study.accounts import create_researcher
    from study.web.context import Services

    services: Services = app.extensions["flourish"]

    def make(role: str = "admin", email: str | None = None):
        with Session(services.engine, expire_on_commit=False) as session:
            researcher = create_researcher(
                session,
                email=email or f"{role}-{uuid.uuid4().hex[:6]}@example.org",
                password=TEST_PASSWORD,
                role=role,
                actor="test",
            )
            session.commit()
            return researcher

    return make


def csrf_token_from(html: str) -> str:
    """The CSRF token from a rendered form, as a browser would submit it."""
    import re

    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def login(client):
    """Log `client` in as a researcher through the real login form (CSRF included)."""

    def do_login(researcher, password: str = TEST_PASSWORD):
        page = client.get("/login")
        token = csrf_token_from(page.get_data(as_text=True))
        response = client.post(
            "/login",
            data={"email": researcher.email, "password": password, "csrf_token": token},
        )
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        return response

    return do_login


# --- a live server and a real browser ------------------------------------------------------------

CHROMIUM = os.environ.get("FLOURISH_TEST_CHROMIUM") or shutil.which("chromium") or ""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on a free loopback port, in a background thread."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (its own browser download cannot work here)."""
    if not CHROMIUM:
        pytest.skip("Chromium is not installed (apt-get install chromium); required under CI")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
