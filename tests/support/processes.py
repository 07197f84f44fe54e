"""Flourish as real processes: gunicorn on a free port, environment, readiness, killing.

    env = server_env(settings, database_url)
    with Gunicorn.start(env) as web:             # deploy/gunicorn.conf.py, 2 workers
        httpx.get(web.url + "/healthz")
        web.kill()                                # SIGKILL to master and workers
        web = web.restart()

Every process is started in its own session (process group), so a kill reaches the gunicorn
master and all its workers at once, as when a host loses power or the OOM killer strikes, and
nothing is left behind when a test fails half-way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from study.config import Settings

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 90.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(settings: Settings, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a server or scheduler process that shares `settings`' keys, so that
    survey links made by the test verify in the server and contact details decrypt."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLOURISH_", "TWILIO_", "SMTP_"))
    }
    env.update(
        FLOURISH_ENV="test",
        FLOURISH_INSTANCE_PATH=str(settings.instance_path),
        FLOURISH_DATABASE_URL=database_url,
        FLOURISH_SECRET_KEY=settings.secret_key,
        FLOURISH_PII_KEY=settings.pii_key,
        FLOURISH_PUBLIC_URL=settings.public_url,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def wait_for(url: str, *, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers at all (any HTTP status); fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited ({process.returncode}) before {url} answered")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.1)


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process's whole group and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    process.wait(timeout=30)


@dataclass
class Gunicorn:
    """gunicorn with deploy/gunicorn.conf.py serving `study.wsgi:app` on a loopback port."""

    env: dict[str, str]
    port: int
    workers: int
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @classmethod
    def start(cls, env: dict[str, str], *, workers: int = 2, log: Path | None = None) -> Gunicorn:
        """Start it and wait until `/healthz` answers."""
        log = log or Path(env["FLOURISH_INSTANCE_PATH"]) / "gunicorn.log"
        server = cls(env=env, port=free_port(), workers=workers, log=log)
        server._launch()
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> None:
        env = dict(
            self.env,
            FLOURISH_BIND=f"127.0.0.1:{self.port}",
            FLOURISH_WEB_WORKERS=str(self.workers),
            FLOURISH_WEB_THREADS="4",
        )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", str(GUNICORN_CONF)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # Generous: each worker imports the whole app, slowly on a busy CI machine.
            wait_for(self.url + "/healthz", timeout=STARTUP_SECONDS, process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"gunicorn did not start; log:\n{self.log.read_text()}") from exc

    def kill(self) -> None:
        """SIGKILL the master and every worker at once: no graceful anything."""
        if self.process is not None:
            kill_group(self.process, signal.SIGKILL)

    def restart(self) -> Gunicorn:
        """Start again on the same port and database after a kill."""
        self.kill()
        self._launch()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process, signal.SIGTERM)

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
