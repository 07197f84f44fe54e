"""`flourish schedule`: preview a protocol's plan for one participant; re-plan and top up.

`preview` needs no database: it reads the protocol file and prints every occasion as CSV
`occasion,instrument,due_local,due_utc,closes_utc`, one row per instrument, so an investigator
can check a schedule (DST weeks included) before anyone enrolls.
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import UTC, datetime, timedelta

import click
from sqlmodel import select

from ..db import unit_of_work
from ..models import Participant, Study
from ..protocol import ProtocolError, load_protocol
from ..protocol.registry import current_version, load_version
from ..schedule import (
    DEFAULT_HORIZON,
    ScheduleError,
    TimeZoneError,
    change_time_zone,
    extend_horizon,
    plan_occasions,
    replan,
    schedule_seed,
)
from . import CliContext, pass_cli

PREVIEW_FIELDS = ("occasion", "instrument", "due_local", "due_utc", "closes_utc")


@click.group("schedule")
def schedule_group() -> None:
    """Participants' schedules: preview a plan, re-plan a participant, top up the horizon."""


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{name!r} is not an IANA time zone known here, e.g. Europe/London", param_hint="--tz"
        ) from None


def _instant(value: str, tz: zoneinfo.ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: write an ISO 8601 date and time, e.g. 2026-03-02T09:00:00+00:00",
            param_hint="--enrolled-at",
        ) from None
    # Without an offset the time is read as the participant's local time.
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="seconds")


def preview_csv(plan) -> str:
    """The plan as CSV, one row per instrument per occasion."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PREVIEW_FIELDS)
    for occasion in plan:
        for instrument in occasion.instruments:
            writer.writerow(
                (
                    occasion.occasion,
                    instrument,
                    _iso(occasion.due_local),
                    _iso(occasion.due_at.astimezone(UTC)),
                    _iso(occasion.closes_at.astimezone(UTC)),
                )
            )
    return out.getvalue()


@schedule_group.command("preview")
@click.argument("protocol_file", metavar="PROTOCOL", type=click.Path(dir_okay=False))
@click.option(
    "--enrolled-at",
    required=True,
    metavar="ISO_DATETIME",
    help="Enrollment instant; without an offset, a local time in --tz.",
)
@click.option("--tz", "timezone", required=True, metavar="ZONE", help="IANA time zone.")
@click.option("--seed", default="preview", show_default=True, help="Seed of the EMA times.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Only occasions due within N days of enrollment (default: all).",
)
@click.option(
    "--ema-opt-in/--no-ema-opt-in",
    default=True,
    show_default=True,
    help="Plan opt-in EMA as for a participant who agreed to it.",
)
def preview_command(
    protocol_file: str,
    enrolled_at: str,
    timezone: str,
    seed: str,
    days: int | None,
    ema_opt_in: bool,
) -> None:
    """Print PROTOCOL's occasions for one participant as CSV."""
    tz = _zone(timezone)
    instant = _instant(enrolled_at, tz)
    try:
        protocol = load_protocol(protocol_file)
    except ProtocolError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None
    plan = plan_occasions(
        protocol,
        enrolled_at=instant,
        timezone=timezone,
        seed=seed,
        horizon=timedelta(days=days) if days else None,
        ema_opt_in=ema_opt_in,
    )
    click.echo(preview_csv(plan), nl=False)


@schedule_group.command("replan")
@click.argument("code")
@click.option("--tz", "timezone", default=None, metavar="ZONE", help="The participant's new zone.")
@pass_cli
def replan_command(cli: CliContext, code: str, timezone: str | None) -> None:
    """Re-plan participant CODE's future occasions (after a move, or under the version in force).

    Only occasions still to come and not yet sent are replaced; audited as the OS user.
    """
    if timezone is not None:
        _zone(timezone)
    now = datetime.now(UTC)
    with unit_of_work(cli.engine) as session:
        participant = session.exec(select(Participant).where(Participant.code == code)).first()
        if participant is None:
            raise click.ClickException(f"there is no participant with code {code!r}")
        study = session.get(Study, participant.study_id)
        version = current_version(session, participant.study_id)
        if version is None:
            raise click.ClickException("the participant's study has no protocol version")
        try:
            if timezone is not None and timezone != participant.timezone:
                # The same path as the portal and coordinator pages: validated and audited.
                change = change_time_zone(
                    session,
                    participant,
                    timezone,
                    now=now,
                    actor=cli.actor,
                    secret_key=cli.settings.secret_key,
                )
                result = change.replanned
                if result is None:
                    click.echo(f"{code}: time zone set to {timezone} (not enrolled yet)")
                    return
            else:
                result = replan(
                    session,
                    participant,
                    load_version(version),
                    version.id,
                    now=now,
                    seed=schedule_seed(cli.settings.secret_key, study.slug),
                    actor=cli.actor,
                    reason="protocol",
                )
        except (ScheduleError, TimeZoneError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{code}: {result.cancelled_occasions} future occasion(s) cancelled, "
        f"{len(result.occasions)} planned with {result.messages} message(s) "
        f"under protocol version {version.number}"
    )


@schedule_group.command("extend")
@click.option(
    "--horizon-days",
    type=click.IntRange(min=1),
    default=DEFAULT_HORIZON.days,
    show_default=True,
    help="Write occasions due within this many days.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@pass_cli
def extend_command(cli: CliContext, horizon_days: int, batch_size: int) -> None:
    """Top up every enrolled participant's schedule now (the scheduler does this by itself)."""
    now = datetime.now(UTC)
    after_id = 0
    totals = {"checked": 0, "extended": 0, "replanned": 0, "occasions": 0, "messages": 0}
    while True:
        with unit_of_work(cli.engine) as session:
            outcome = extend_horizon(
                session,
                now,
                secret_key=cli.settings.secret_key,
                horizon=timedelta(days=horizon_days),
                batch_size=batch_size,
                after_id=after_id,
                actor=cli.actor,
            )
        for name in totals:
            totals[name] += getattr(outcome, name)
        after_id = outcome.next_after_id
        if after_id == 0:
            break
    click.echo(", ".join(f"{name} {count}" for name, count in totals.items()))


COMMANDS = [schedule_group]
