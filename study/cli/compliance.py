"""`flourish compliance SLUG`: what became of every occasion of a study.

Without options it prints the summary by arm and occasion (schedule key and wave): occasions,
those due (completed or closed), completed, response rate, late, missed (of which partial),
cancelled, still open, and delivery failures by channel. `--csv` prints one row per occasion
instead, with its stages and latencies in seconds. Participants appear by code only; `--blind`
leaves the arm out, for sharing with someone who must stay blind to allocation.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import click
from sqlmodel import Session, select

from ..compliance import ComplianceGroup, compliance_records, summarise
from ..models import Study
from . import CliContext, pass_cli

RECORD_FIELDS = (
    "participant",
    "arm",
    "schedule_key",
    "wave",
    "kind",
    "due_utc",
    "closes_utc",
    "status",
    "reached",
    "channels",
    "delivery",
    "sent_utc",
    "opened_utc",
    "completed_utc",
    "due_to_sent_s",
    "sent_to_opened_s",
    "opened_to_completed_s",
    "due_to_completed_s",
    "late",
)


def _iso(instant: datetime | None) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds") if instant else ""


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def records_csv(records, *, blind: bool = False) -> str:
    """Records as CSV (`RECORD_FIELDS`; without `arm` when blind)."""
    fields = [name for name in RECORD_FIELDS if not (blind and name == "arm")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for record in records:
        row = {
            "participant": record.participant,
            "arm": record.arm or "",
            "schedule_key": record.schedule_key,
            "wave": record.wave,
            "kind": record.kind,
            "due_utc": _iso(record.due_at),
            "closes_utc": _iso(record.closes_at),
            "status": record.status,
            "reached": record.reached,
            "channels": " ".join(record.channels),
            "delivery": " ".join(f"{ch}:{status}" for ch, status in record.delivery.items()),
            "sent_utc": _iso(record.sent_at),
            "opened_utc": _iso(record.opened_at),
            "completed_utc": _iso(record.completed_at),
            "due_to_sent_s": _number(record.due_to_sent),
            "sent_to_opened_s": _number(record.sent_to_opened),
            "opened_to_completed_s": _number(record.opened_to_completed),
            "due_to_completed_s": _number(record.due_to_completed),
            "late": "yes" if record.late else "no",
        }
        writer.writerow([row[name] for name in fields])
    return out.getvalue()


def _rate(group: ComplianceGroup) -> str:
    rate = group.response_rate
    return "-" if rate is None else f"{rate:.1%}"


def _failures(group: ComplianceGroup) -> str:
    return ", ".join(f"{ch} {n}" for ch, n in sorted(group.delivery_failures.items())) or "-"


def summary_table(summary, *, blind: bool = False) -> str:
    """The summary as an aligned plain-text table, groups then per-arm totals then the total."""
    header = ["arm", "occasion", "n", "due", "completed", "rate", "late", "missed", "partial",
              "cancelled", "open", "delivery failures"]  # fmt: skip
    if blind:
        header = header[1:]
    rows = []

    def add(group: ComplianceGroup, label: str) -> None:
        row = [group.arm or "-", label]
        row += [str(n) for n in (group.occasions, group.due, group.completed)]
        row.append(_rate(group))
        row += [str(n) for n in (group.late, group.missed, group.missed_partial)]
        row += [str(n) for n in (group.cancelled, group.open)]
        row.append(_failures(group))
        rows.append(row[1:] if blind else row)

    groups = summary.groups
    if blind:
        groups = summarise_blind(groups)
    for group in groups:
        add(group, f"{group.schedule_key}#{group.wave}")
    if not blind:
        for group in summary.arms:
            add(group, "all")
    total = summary.total
    add(total, "all")
    if not blind:
        rows[-1][0] = "(all arms)"
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
             for line in [header, *rows]]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines) + "\n"


def summarise_blind(groups) -> list[ComplianceGroup]:
    """Per-arm groups folded together by occasion, so no row reveals an arm."""
    merged: dict[tuple, ComplianceGroup] = {}
    for group in groups:
        key = (group.schedule_key, group.wave)
        into = merged.setdefault(key, ComplianceGroup(None, *key))
        for name in ("occasions", "due", "completed", "late", "missed", "missed_partial",
                     "cancelled", "open"):  # fmt: skip
            setattr(into, name, getattr(into, name) + getattr(group, name))
        for channel, count in group.delivery_failures.items():
            into.delivery_failures[channel] = into.delivery_failures.get(channel, 0) + count
    return [merged[key] for key in sorted(merged)]


@click.command("compliance")
@click.argument("slug")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per occasion instead.")
@click.option("--blind", is_flag=True, help="Leave out the arm (for blinded staff).")
@pass_cli
def compliance_command(cli: CliContext, slug: str, as_csv: bool, blind: bool) -> None:
    """Compliance of study SLUG: response rates by arm and wave, or every occasion as CSV."""
    now = datetime.now(UTC)
    with Session(cli.engine) as session:
        study = session.exec(select(Study).where(Study.slug == slug)).first()
        if study is None:
            raise click.ClickException(f"there is no study {slug!r}")
        records = compliance_records(session, study.id, now=now)
    if as_csv:
        click.echo(records_csv(records, blind=blind), nl=False)
        return
    if not records:
        click.echo(f"{slug}: no occasions yet")
        return
    summary = summarise(records, now=now)
    click.echo(f"{study.title} ({slug}), as of {_iso(now)}")
    click.echo(summary_table(summary, blind=blind), nl=False)


COMMANDS = [compliance_command]
