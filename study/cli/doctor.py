"""`flourish doctor`: check a deployment's configuration and say what to fix."""

from __future__ import annotations

import json
import os

import click

from ..clock import SystemClock
from ..doctor import FAIL, WARN, diagnose, worst
from . import CliContext, pass_cli

LABELS = {"ok": "OK", "warn": "WARN", "fail": "FAIL"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_cli
def doctor(cli: CliContext, as_json: bool) -> None:
    """Check keys, database, public URL, channel credentials, assistant API keys, allocation
    seeds, the instance folder and the scheduler heartbeat, as this process's environment
    configures them.

    Each check prints OK, WARN or FAIL and, unless it is OK, what to do. The exit status is 1
    when any check fails (so a deployment script can stop), 0 otherwise. Secrets are named,
    never printed.
    """
    environ = dict(os.environ)
    if cli.overrides.get("database_url"):
        environ["FLOURISH_DATABASE_URL"] = cli.overrides["database_url"]
    checks = diagnose(environ, SystemClock().now())
    status = worst(checks)
    if as_json:
        payload = {"status": status, "checks": [check.as_dict() for check in checks]}
        click.echo(json.dumps(payload, indent=2))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            colour = {FAIL: "red", WARN: "yellow"}.get(check.status, "green")
            label = click.style(f"{LABELS[check.status]:<4}", fg=colour, bold=True)
            click.echo(f"{label}  {check.name:<{width}}  {check.message}")
            if check.fix and check.status != "ok":
                click.echo(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
        counts = {name: sum(1 for c in checks if c.status == name) for name in LABELS}
        click.echo(
            f"\n{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)"
        )
    if status == FAIL:
        raise SystemExit(1)


COMMANDS = [doctor]
