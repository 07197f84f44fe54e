"""`flourish report`: the study report (HTML, PDF) and its replication bundle.

The data come from a CSV in the analysis data contract's format (`--data`, e.g. from `flourish
simulate`) or from the database (`--study SLUG`, assembled by `analysis.dataset.assemble`).
Writing a report from the database is audited, as any export of study data is.
"""

from __future__ import annotations

import click
import pandas as pd
from sqlmodel import Session, select

from ..audit import record
from ..models import Study
from ..protocol import ProtocolError, load_protocol
from . import CliContext, pass_cli


@click.command("report")
@click.option(
    "--prereg", "prereg_file", type=click.Path(dir_okay=False, exists=True), required=True
)
@click.option("--data", "data_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--study", "slug", help="Assemble the dataset of study SLUG from the database.")
@click.option(
    "--protocol",
    "protocol_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Protocol file: codebook labels, citations and reliability (with --data).",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@pass_cli
def report(
    cli: CliContext,
    prereg_file: str,
    data_file: str | None,
    slug: str | None,
    protocol_file: str | None,
    out_dir: str,
) -> None:
    """Write report.html, report.pdf, bundle/ and bundle.zip into --out.

    Give exactly one of --data FILE.csv and --study SLUG.
    """
    from analysis.preregistration import PreregistrationError
    from analysis.report import write_report

    if (data_file is None) == (slug is None):
        raise click.UsageError("give exactly one of --data and --study")
    protocol = None
    if protocol_file:
        try:
            protocol = load_protocol(protocol_file)
        except ProtocolError as exc:
            raise click.ClickException(str(exc)) from exc
    if data_file is not None:
        data = pd.read_csv(data_file, dtype={"participant": str, "consent_version": str})
        source = data_file
    else:
        data, protocol = _from_database(cli, slug)
        source = f"study {slug} in the database"
    try:
        files = write_report(data, prereg_file, out_dir, protocol=protocol, source=source)
    except PreregistrationError as exc:
        raise click.ClickException(str(exc)) from exc
    if slug is not None:
        with Session(cli.engine) as session:
            study = session.exec(select(Study).where(Study.slug == slug)).one()
            record(
                session,
                cli.actor,
                "report.write",
                entity_type="study",
                entity_id=study.id,
                details={
                    "out": str(out_dir),
                    "prereg": prereg_file,
                    "data_sha256": files.data_sha256,
                },
            )
            session.commit()
    for path in (files.html, files.pdf, files.bundle_zip):
        click.echo(str(path))


def _from_database(cli: CliContext, slug: str):
    from analysis.dataset import assemble

    from ..protocol.registry import current_version, load_version

    with Session(cli.engine) as session:
        study = session.exec(select(Study).where(Study.slug == slug)).first()
        if study is None:
            raise click.ClickException(f"no study '{slug}'")
        data = assemble(session, study.id)
        protocol = load_version(current_version(session, study.id))
    return data, protocol


COMMANDS = [report]
