"""The files in deploy/ say what docs/deploy.md says they do.

Nothing here starts systemd, a container runtime or a proxy (the test machine has none of
them); these checks catch the mistakes that would otherwise surface only on a server: a shell
syntax error, a unit that runs as root or can write the whole disk, a compose service without a
health check, an image that runs as root or serves before migrating.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import pytest
import yaml

from tests.support.processes import ROOT

DEPLOY = ROOT / "deploy"
SCRIPTS = sorted(DEPLOY.glob("*.sh"))
SERVICES = sorted((DEPLOY / "systemd").glob("*.service"))


def unit(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shell_scripts_parse_and_pass_shellcheck_where_it_is_installed(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("path", SERVICES, ids=lambda path: path.name)
def test_every_unit_runs_unprivileged_from_the_environment_file(path):
    service = unit(path)["Service"]
    assert service["User"] == "flourish"
    assert service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict"
    assert service["EnvironmentFile"] == "/etc/flourish/flourish.env"
    assert service["CapabilityBoundingSet"] == ""


def test_the_web_unit_runs_gunicorn_with_the_shipped_configuration():
    web = unit(DEPLOY / "systemd/flourish-web.service")
    assert web["Service"]["ExecStart"].endswith(
        "gunicorn -c /opt/flourish/app/deploy/gunicorn.conf.py"
    )
    assert (DEPLOY / "gunicorn.conf.py").is_file()
    assert "flourish-migrate.service" in web["Unit"]["After"]
    scheduler = unit(DEPLOY / "systemd/flourish-scheduler.service")
    assert scheduler["Service"]["ExecStart"].endswith("flourish scheduler")
    assert scheduler["Service"]["Restart"] == "always"


def test_the_compose_file_runs_postgres_web_and_scheduler_with_health_checks():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"] == "postgres:15"
    for name in ("db", "web", "scheduler"):
        assert "healthcheck" in services[name], name
    assert services["web"]["command"] == ["web"]
    assert services["scheduler"]["command"] == ["scheduler"]
    assert services["scheduler"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["web"]["environment"]["FLOURISH_DATABASE_URL"].startswith("postgresql://")
    assert {"pgdata", "instance"} <= set(compose["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]


def test_the_image_runs_as_a_user_and_migrates_before_serving():
    containerfile = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", containerfile, re.M)
    assert re.search(r"^USER flourish$", containerfile, re.M)
    entrypoint = (DEPLOY / "container-entrypoint.sh").read_text()
    assert entrypoint.index("flourish db upgrade") < entrypoint.index("exec gunicorn")
    assert "exec flourish scheduler" in entrypoint


def test_the_proxies_pass_what_twilio_signature_checks_and_secure_cookies_need():
    nginx = (DEPLOY / "nginx/flourish.conf").read_text()
    for header in (
        "Host $host",
        "X-Forwarded-Proto $scheme",
        "X-Forwarded-Host $host",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
    ):
        assert f"proxy_set_header {header};" in nginx
    # No URI part after the upstream: the path and query reach the app exactly as Twilio sent.
    assert re.search(r"^\s*proxy_pass http://flourish;$", nginx, re.M)
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy {$FLOURISH_UPSTREAM:127.0.0.1:8000}" in caddy


def test_the_example_environment_names_every_variable_doctor_checks_and_only_placeholders():
    from study.doctor import PLACEHOLDERS

    lines = (DEPLOY / "flourish.env.example").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    for name in (
        "FLOURISH_SECRET_KEY",
        "FLOURISH_PII_KEY",
        "FLOURISH_PUBLIC_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "SMTP_HOST",
        "FLOURISH_ALLOCATION_SEED",
    ):
        assert name in values
    for secret in ("FLOURISH_SECRET_KEY", "FLOURISH_PII_KEY", "TWILIO_AUTH_TOKEN", "SMTP_PASSWORD"):
        assert any(word in values[secret].lower() for word in PLACEHOLDERS), secret
