"""`flourish export STUDY --format csv|parquet|sav|dta|all --out DIR`: the analysis dataset.

Writes the long-format dataset (participant codes only) with its codebook, Frictionless and
Psych-DS metadata (docs/exports.md). Each export is recorded in the audit log: who exported
which study, in which formats, how many rows, and the data's snapshot hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from sqlmodel import select

from analysis.codebook import build_codebook
from analysis.dataset import assemble
from analysis.exports import FORMATS, ExportMeta, write_export
from analysis.provenance import software_versions

from .. import audit
from ..db import unit_of_work
from ..models import Study
from ..protocol.registry import current_version, load_version
from . import CliContext, pass_cli

_PACKAGES = ("flourish", "pandas", "pyarrow", "pyreadstat")


@click.command("export")
@click.argument("study")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*FORMATS, "all"]),
    default="all",
    show_default=True,
    help="File format; the canonical CSV, codebook and metadata are always written.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write into (created if needed).",
)
@click.option(
    "--exclude-withdrawn", is_flag=True, help="Leave out participants who have withdrawn."
)
@pass_cli
def export_command(cli: CliContext, study: str, fmt: str, out: Path, exclude_withdrawn: bool):
    """Export study STUDY's analysis dataset (by slug) with codebook and metadata."""
    formats = FORMATS if fmt == "all" else ("csv", fmt) if fmt != "csv" else ("csv",)
    now = datetime.now(UTC)
    with unit_of_work(cli.engine) as session:
        row = session.exec(select(Study).where(Study.slug == study)).first()
        if row is None:
            raise click.ClickException(f"there is no study {study!r}")
        protocol = load_version(current_version(session, row.id))
        data = assemble(session, row.id, include_withdrawn=not exclude_withdrawn)
        codebook = build_codebook(data, protocol)
        meta = ExportMeta(
            slug=row.slug,
            title=row.title,
            description=" ".join(protocol.model.study.description.split()),
            created_at=now,
            software=software_versions(_PACKAGES),
        )
        result = write_export(data, codebook, out, formats, meta=meta)
        audit.record(
            session,
            cli.actor,
            "data.export",
            entity_type="study",
            entity_id=row.id,
            details={
                "study": row.slug,
                "formats": list(formats),
                "rows": result.rows,
                "columns": result.columns,
                "participants": int(data["participant"].nunique()),
                "include_withdrawn": not exclude_withdrawn,
                "snapshot_sha256": result.sha256,
            },
            at=now,
        )
    click.echo(
        f"{study}: {result.rows} rows x {result.columns} columns, snapshot sha256 "
        f"{result.sha256}, written to {out}"
    )
    for name, path in result.files.items():
        click.echo(f"  {name}: {path}")


COMMANDS = [export_command]
