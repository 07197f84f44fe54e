"""`flourish audit`: export the audit log and verify its hash chain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from .. import audit
from ..db import unit_of_work
from . import CliContext, pass_cli

FORMATS = ("jsonl", "csv")


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time, e.g. 2026-03-01 or 2026-03-01T09:00Z"
        ) from exc
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


@click.group("audit")
def audit_group() -> None:
    """The append-only, hash-chained audit log."""


@audit_group.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option(
    "--since",
    default=None,
    help="Only events at or after this ISO 8601 instant (UTC when no offset is given).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@pass_cli
def export(cli: CliContext, fmt: str, since: str | None, out: Path | None) -> None:
    """Export the log with every hash needed to verify it elsewhere.

    The export itself is recorded in the log (after the exported events), so there is a trace of
    who took a copy.
    """
    since_at = _parse_since(since)
    with unit_of_work(cli.engine) as session:
        content = audit.export(session, fmt, since=since_at)
        count = len(audit.parse_export(content, fmt))
        audit.record(
            session,
            cli.actor,
            "audit.exported",
            details={
                "format": fmt,
                "since": since_at.isoformat() if since_at else None,
                "events": count,
                "to": "file" if out else "stdout",
            },
        )
    if out is None:
        click.echo(content, nl=False)
    else:
        out.write_text(content, encoding="utf-8")
        click.echo(f"wrote {count} events to {out}", err=True)


@audit_group.command("verify")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Verify an export (.jsonl or .csv) instead of the database.",
)
@pass_cli
def verify(cli: CliContext, path: Path | None) -> None:
    """Check every event's hash and its link to the one before. Exit status 1 if broken."""
    if path is None:
        with unit_of_work(cli.engine) as session:
            events = list(audit.events(session))
        start = ""
        source = "audit log"
    else:
        fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
        try:
            events = audit.parse_export(path.read_text(encoding="utf-8"), fmt)
        except (ValueError, KeyError) as exc:
            raise click.ClickException(f"{path}: {exc}") from exc
        start = events[0].prev_hash if events else ""
        source = str(path)
        if start:
            # An export made with --since starts part-way; its first link cannot be checked here.
            click.echo(
                f"note: {path} starts at event {events[0].id}; "
                "its link to earlier events is not checked",
                err=True,
            )
    problems = audit.verify_chain(events, start=start)
    if problems:
        for problem in problems:
            click.echo(f"event {problem.event_id}: {problem.message}", err=True)
        raise click.ClickException(
            f"{source} is broken: {len(problems)} problem(s) in {len(events)} events"
        )
    head = events[-1].event_hash if events else "(empty)"
    click.echo(f"{source} intact: {len(events)} events; newest hash {head}")


COMMANDS = [audit_group]
