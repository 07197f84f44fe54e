"""`flourish rehearse`: the full-study dress rehearsal (docs/rehearsal.md)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlmodel import Session

from ..config import Settings
from ..db import make_engine
from ..migrate import upgrade
from ..models import Participant

PUBLIC_URL = "https://rehearsal.flourish.invalid"
TWILIO_ACCOUNT = "AC" + "0" * 31 + "9"
TWILIO_FROM = "+15005550006"


@click.command()
@click.option("--participants", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--seed", default=1, show_default=True, type=int, help="Population and allocation.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the report, the preregistration lock and the database go.",
)
@click.option(
    "--database-url",
    "database_url",
    default=None,
    help="An empty database to rehearse on (default: a new SQLite file in --out).",
)
@click.option(
    "--days",
    default=None,
    type=click.FloatRange(1),
    help="Simulated days (default: until the last follow-up window has closed).",
)
def rehearse(participants: int, seed: int, out_dir: Path, database_url: str | None, days) -> None:
    """Run the example trial with simulated participants on an accelerated clock, then the
    preregistered analysis and report; print the figures and the checks. Exits 1 if any check
    fails. Nothing leaves this machine: SMS, email and the assistant are local stand-ins."""
    from study.rehearsal import RehearsalConfig
    from study.rehearsal import rehearse as run
    from study.rehearsal.fakes import LocalAssistant, MailSink, SmsGateway
    from study.rehearsal.protocol import assistant_key_envs, rehearsal_protocol

    out_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{(out_dir / 'rehearsal.sqlite3').resolve()}"
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        if session.execute(select(func.count(Participant.id))).scalar_one():
            raise click.ClickException(f"{url} already holds participants: give an empty database")
    config = RehearsalConfig(participants=participants, seed=seed)
    if days is not None:
        config = RehearsalConfig(participants=participants, seed=seed, days=days)
    # This process only: the allocation seed and the assistants' keys the protocol names.
    os.environ["FLOURISH_ALLOCATION_SEED"] = f"rehearsal-{seed}"
    for name in assistant_key_envs(rehearsal_protocol("http://127.0.0.1/v1")):
        os.environ[name] = os.environ.get(name) or "rehearsal-key"
    twilio_token = secrets.token_hex(16)
    with MailSink() as mail, LocalAssistant() as assistant:
        settings = Settings.from_env(
            {},
            env="development",
            instance_path=out_dir / "instance",
            database_url=url,
            secret_key=secrets.token_urlsafe(32),
            pii_key=Fernet.generate_key().decode(),
            public_url=PUBLIC_URL,
            twilio_account_sid=TWILIO_ACCOUNT,
            twilio_auth_token=twilio_token,
            twilio_from=TWILIO_FROM,
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_from="study@rehearsal.flourish.invalid",
            smtp_starttls=False,
        )
        click.echo(f"rehearsing {participants} participants (seed {seed}) on {url}")
        result = run(
            engine,
            settings,
            out_dir,
            sms_gateway=SmsGateway(TWILIO_ACCOUNT, twilio_token),
            mail=mail,
            assistant_base_url=assistant.base_url,
            config=config,
            progress=lambda line: click.echo(line),
        )
    click.echo("")
    click.echo(result.summary_table())
    if result.report_files is not None:
        click.echo(f"report: {result.report_files.html}, {result.report_files.pdf}")
    click.echo("")
    click.echo(result.checks_table())
    if not result.all_passed:
        sys.exit(1)


COMMANDS = [rehearse]
