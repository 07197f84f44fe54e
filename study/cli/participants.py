"""`flourish participant`: withdrawal and data-subject requests from the server's shell.

The same domain functions as the researcher pages, for operators handling a request by email or
letter. Every action is audited as `cli:<os user>`. Participant codes are unique across studies.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from sqlmodel import Session, select

import consent
from consent.signing import TAKING_PART
from consent.withdrawal import WITHDRAWN_BY

from ..db import unit_of_work
from ..models import Participant
from ..pii import PiiError, PiiVault
from ..protocol import Protocol, ProtocolError
from ..protocol.registry import current_version, load_version
from . import CliContext, pass_cli


def _participant(session: Session, code: str) -> Participant:
    participant = session.exec(select(Participant).where(Participant.code == code)).first()
    if participant is None:
        raise click.ClickException(f"there is no participant with code {code!r}")
    return participant


def _protocol(session: Session, participant: Participant) -> Protocol:
    version = current_version(session, participant.study_id)
    if version is None:
        raise click.ClickException("the participant's study has no protocol version")
    try:
        return load_version(version)
    except ProtocolError as exc:
        raise click.ClickException(f"the protocol in force does not validate: {exc}") from exc


@click.group("participant")
def participant_group() -> None:
    """Withdraw participants, export or erase everything held on one (data-subject requests)."""


@participant_group.command("withdraw")
@click.argument("code")
@click.option("--reason", default="", help="Why (kept with the participant, not in the log).")
@click.option(
    "--by",
    type=click.Choice(WITHDRAWN_BY),
    default="coordinator",
    show_default=True,
    help="Who asked for the withdrawal.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def withdraw(cli: CliContext, code: str, reason: str, by: str, yes: bool) -> None:
    """Withdraw participant CODE: cancel everything pending; keep or erase data per protocol."""
    if not yes:
        click.confirm(f"Withdraw {code} now? Pending invitations are cancelled", abort=True)
    with unit_of_work(cli.engine) as session:
        participant = _participant(session, code)
        result = consent.withdraw(
            session,
            participant=participant,
            protocol=_protocol(session, participant),
            now=datetime.now(UTC),
            actor=cli.actor,
            reason=reason,
            by=by,
        )
    if result.erasure is not None:
        consent.purge_erased_residues(cli.engine)
    if result.already_withdrawn:
        click.echo(f"{code}: already withdrawn")
        return
    click.echo(
        f"{code}: withdrawn; {result.cancelled_messages} pending message(s) and "
        f"{result.cancelled_occasions} open occasion(s) cancelled; data "
        f"{'erased' if result.erasure is not None else 'kept'} ({result.data_on_withdrawal})"
    )


@participant_group.command("export")
@click.argument("code")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the JSON to this file instead of standard output.",
)
@pass_cli
def export(cli: CliContext, code: str, output: str | None) -> None:
    """Print (or write) everything held on participant CODE as JSON, contact details included."""
    vault = PiiVault(cli.settings.pii_key)
    try:
        with unit_of_work(cli.engine) as session:
            data = consent.export_subject(
                session, vault, _participant(session, code), actor=cli.actor, now=datetime.now(UTC)
            )
    except PiiError as exc:
        raise click.ClickException(str(exc)) from exc
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"{code}: exported to {output}", err=True)
    else:
        sys.stdout.write(text)


@participant_group.command("erase")
@click.argument("code")
@click.option(
    "--confirm",
    "confirmation",
    required=True,
    help="The participant code again, typed out, to confirm an erasure that cannot be undone.",
)
@click.option(
    "--keep-pseudonymous-data",
    is_flag=True,
    help="Keep answers and usage data under the pseudonymous code; erase only what identifies.",
)
@pass_cli
def erase(cli: CliContext, code: str, confirmation: str, keep_pseudonymous_data: bool) -> None:
    """Erase the personal data of participant CODE (withdrawing them first if taking part)."""
    if confirmation != code:
        raise click.ClickException("--confirm must repeat the participant code exactly")
    with unit_of_work(cli.engine) as session:
        participant = _participant(session, code)
        now = datetime.now(UTC)
        if participant.status in TAKING_PART:
            consent.withdraw(
                session,
                participant=participant,
                protocol=_protocol(session, participant),
                now=now,
                actor=cli.actor,
                reason="data-subject erasure request",
                by="coordinator",
            )
        report = consent.erase_subject(
            session,
            participant=participant,
            now=now,
            actor=cli.actor,
            keep_pseudonymous_data=keep_pseudonymous_data,
        )
    consent.purge_erased_residues(cli.engine)
    counts = ", ".join(f"{name} {count}" for name, count in report.counts().items() if count)
    click.echo(f"{code}: erased ({counts or 'nothing left to erase'})")


COMMANDS = [participant_group]
