"""`flourish run`, `serve`, `scheduler` and `keys generate`, including real server processes."""

from __future__ import annotations

import http.cookiejar
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from study import accounts
from study.cli import main
from study.cli.server import DEMO_EMAIL, ensure_demo_account
from study.config import Settings
from study.db import make_engine
from study.models import Researcher, ServiceHeartbeat
from tests.conftest import csrf_token_from

FLOURISH = Path(sys.executable).with_name("flourish")
GENEROUS_TIMEOUT = 60.0


def env_for(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """A process environment with no stray FLOURISH_* settings from the developer's shell."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOURISH_")}
    env.update(
        FLOURISH_INSTANCE_PATH=str(tmp_path / "instance"),
        FLOURISH_DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@pytest.fixture
def migrated_url(sqlite_template, tmp_path) -> str:
    return sqlite_template.fresh_url(tmp_path)


@pytest.fixture
def empty_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}"


# --- keys -------------------------------------------------------------------------------------


def test_keys_generate_prints_export_lines_a_production_deployment_accepts():
    result = CliRunner().invoke(main, ["keys", "generate"])

    assert result.exit_code == 0, result.output
    exported = {}
    for line in result.stdout.splitlines():
        if line.startswith("#"):
            continue
        export, assignment = shlex.split(line)
        assert export == "export"
        name, value = assignment.split("=", 1)
        exported[name] = value
    assert set(exported) == {"FLOURISH_SECRET_KEY", "FLOURISH_PII_KEY"}
    Fernet(exported["FLOURISH_PII_KEY"].encode())  # raises if it is not a Fernet key
    settings = Settings.from_env({"FLOURISH_ENV": "production", **exported})
    assert settings.is_production


def test_keys_generate_makes_new_keys_every_time():
    first = CliRunner().invoke(main, ["keys", "generate"]).stdout
    second = CliRunner().invoke(main, ["keys", "generate"]).stdout

    assert first != second


# --- refusing to start ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["serve"], ["scheduler"]])
def test_an_unmigrated_database_is_refused_with_the_fix(command, tmp_path, empty_url):
    result = CliRunner().invoke(main, command, env=env_for(tmp_path, empty_url))

    assert result.exit_code == 1
    assert "flourish db upgrade" in result.output
    assert "none (empty)" in result.output


def test_an_unreachable_database_is_refused(tmp_path):
    url = "postgresql://nobody:secret@127.0.0.1:1/nothing"
    result = CliRunner().invoke(main, ["scheduler", "--once"], env=env_for(tmp_path, url))

    assert result.exit_code == 1
    assert "cannot reach the database" in result.output
    assert "secret" not in result.output


def test_demo_mode_is_refused_in_production(tmp_path, migrated_url):
    env = env_for(
        tmp_path,
        migrated_url,
        FLOURISH_ENV="production",
        FLOURISH_SECRET_KEY="s" * 16 + "t" * 32,
        FLOURISH_PII_KEY=Fernet.generate_key().decode(),
    )
    result = CliRunner().invoke(main, ["run", "--demo"], env=env)

    assert result.exit_code == 1
    assert "--demo" in result.output
    assert "production" in result.output


def test_a_port_in_use_is_refused_before_the_demo_password_changes(tmp_path, migrated_url):
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        result = CliRunner().invoke(
            main, ["run", "--demo", "--port", str(port)], env=env_for(tmp_path, migrated_url)
        )

    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    engine = make_engine(migrated_url)
    with Session(engine) as session:
        assert accounts.find_researcher(session, DEMO_EMAIL) is None
    engine.dispose()


# --- the demo account -------------------------------------------------------------------------


def test_the_demo_account_is_an_admin_and_gets_a_new_password_at_each_start(sqlite_engine):
    now = datetime.now(UTC)
    first = ensure_demo_account(sqlite_engine)
    second = ensure_demo_account(sqlite_engine)

    assert first != second
    with Session(sqlite_engine) as session:
        [demo] = session.exec(select(Researcher)).all()
        assert (demo.email, demo.role, demo.is_active) == (DEMO_EMAIL, "admin", True)
        assert accounts.authenticate(session, DEMO_EMAIL, first, now) is None
        assert accounts.authenticate(session, DEMO_EMAIL, second, now) is not None


def test_the_demo_account_is_restored_if_someone_demoted_or_deactivated_it(sqlite_engine):
    ensure_demo_account(sqlite_engine)
    with Session(sqlite_engine) as session:
        accounts.create_researcher(
            session, email="pi@example.org", password="x" * 6 + "y" * 6, role="admin", actor="t"
        )
        demo = accounts.get_researcher(session, DEMO_EMAIL)
        accounts.set_role(session, demo, "analyst", actor="test")
        accounts.deactivate(session, demo, actor="test")
        session.commit()

    password = ensure_demo_account(sqlite_engine)

    with Session(sqlite_engine) as session:
        demo = accounts.get_researcher(session, DEMO_EMAIL)
        assert (demo.role, demo.is_active) == ("admin", True)
        assert accounts.authenticate(session, DEMO_EMAIL, password, datetime.now(UTC))


# --- scheduler --------------------------------------------------------------------------------


def test_scheduler_once_runs_one_tick_and_beats(tmp_path, migrated_url):
    result = CliRunner().invoke(main, ["scheduler", "--once"], env=env_for(tmp_path, migrated_url))

    assert result.exit_code == 0, result.output
    assert "ticked at" in result.output
    engine = make_engine(migrated_url)
    with Session(engine) as session:
        [beat] = session.exec(select(ServiceHeartbeat)).all()
    engine.dispose()
    assert beat.name == "scheduler"


# --- real processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A `flourish` subprocess whose merged output is read on a thread, line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self.popen = subprocess.Popen(
            [str(FLOURISH), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self._queue.put(line)

    def wait_for_line(self, pattern: str) -> re.Match:
        deadline = time.monotonic() + GENEROUS_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.popen.poll() is not None and self._queue.empty():
                    break
                continue
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"no line matching {pattern!r}; output so far:\n{self.output}")

    @property
    def output(self) -> str:
        while not self._queue.empty():
            self.lines.append(self._queue.get_nowait())
        return "".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, as a service manager would send; returns the exit code."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=GENEROUS_TIMEOUT)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=GENEROUS_TIMEOUT)


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=GENEROUS_TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for_scheduler_ok(base_url: str) -> dict:
    deadline = time.monotonic() + GENEROUS_TIMEOUT
    report: dict = {}
    while time.monotonic() < deadline:
        _status, report = get_json(f"{base_url}/healthz")
        if report["scheduler"]["status"] == "ok":
            return report
        time.sleep(0.1)
    pytest.fail(f"the scheduler never reported ok: {report}")


def test_run_demo_serves_the_app_ticks_and_prints_credentials_that_sign_in(tmp_path, migrated_url):
    port = free_port()
    env = env_for(tmp_path, migrated_url, FLOURISH_SCHEDULER_TICK_SECONDS="0.2")
    process = Process(["run", "--demo", "--port", str(port)], env)
    try:
        url = process.wait_for_line(r"running at (http://\S+)").group(1)
        email = process.wait_for_line(r"email:\s+(\S+)").group(1)
        password = process.wait_for_line(r"password:\s+(\S+)").group(1)
        assert url == f"http://127.0.0.1:{port}"
        assert email == DEMO_EMAIL

        report = wait_for_scheduler_ok(url)
        status, report = get_json(f"{url}/healthz")
        assert (status, report["status"]) == (200, "ok"), report

        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar), NoRedirects()
        )
        with browser.open(f"{url}/login", timeout=GENEROUS_TIMEOUT) as page:
            token = csrf_token_from(page.read().decode())
        form = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token})
        try:
            browser.open(f"{url}/login", data=form.encode(), timeout=GENEROUS_TIMEOUT)
            pytest.fail("signing in did not redirect")
        except urllib.error.HTTPError as answer:
            assert answer.code in (302, 303), answer.read()[:500]
            home = urllib.parse.urljoin(url, answer.headers["Location"])
        assert "/login" not in home
        with browser.open(home, timeout=GENEROUS_TIMEOUT) as page:
            assert page.status == 200

        assert process.stop() == 0, process.output
        assert "Flourish stopped" in process.output
    finally:
        process.kill()


def test_serve_runs_the_web_only_so_health_is_degraded_until_a_scheduler_beats(
    tmp_path, migrated_url
):
    port = free_port()
    env = env_for(tmp_path, migrated_url, FLOURISH_SCHEDULER_TICK_SECONDS="0.2")
    web = Process(["serve", "--port", str(port), "--threads", "2"], env)
    ticker = None
    try:
        url = web.wait_for_line(r"web server at (http://\S+)").group(1)
        status, report = get_json(f"{url}/healthz")
        assert (status, report["status"], report["scheduler"]["status"]) == (
            200,
            "degraded",
            "missing",
        )

        ticker = Process(["scheduler"], env)
        ticker.wait_for_line(r"scheduler ticking")
        assert wait_for_scheduler_ok(url)["status"] == "ok"

        assert ticker.stop() == 0, ticker.output
        assert "scheduler stopped after" in ticker.output
        assert web.stop() == 0, web.output
    finally:
        web.kill()
        if ticker is not None:
            ticker.kill()
