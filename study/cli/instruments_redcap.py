"""`flourish instruments redcap-export | redcap-import | reliability`.

REDCap data dictionaries in and out (see `instruments.redcap`), and the reliability of an
instrument's scores in a CSV of responses, per wave (see `instruments.psychometrics`). None of
them needs a database.
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from instruments.catalogue import Library, UnknownInstrumentError
from instruments.loader import InstrumentError, load_instrument
from instruments.redcap import (
    RedcapExportError,
    RedcapImportError,
    export_redcap,
    instrument_yaml,
    read_redcap,
)
from instruments.schema import Instrument
from instruments.scoring import AnswerError, score_frame

from .instruments import instruments_group
from .instruments_score import read_responses

COMMANDS: list[click.Command] = []  # attached to `flourish instruments` below, not to `main`

library_option = click.option(
    "--library",
    "library_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A study's directory of instrument and wording files, searched with the library.",
)


def _instrument(reference: str, library_dirs: tuple[str, ...]) -> Instrument:
    """A library id, or the path of an instrument YAML file."""
    path = Path(reference)
    try:
        if path.suffix in (".yaml", ".yml") or path.is_file():
            return load_instrument(path)
        return Library.load(*library_dirs).get(reference)
    except (InstrumentError, UnknownInstrumentError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("redcap-export")
@click.argument("instrument_ref", metavar="ID")
@click.option("--language", default="en", show_default=True, help="Language of the wording.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the dictionary here (default: standard output).",
)
@click.option(
    "--no-record-id",
    is_flag=True,
    help="Leave out the record_id field (to add the rows to an existing project's dictionary).",
)
@library_option
def redcap_export(
    instrument_ref: str,
    language: str,
    out_path: str | None,
    no_record_id: bool,
    library_dirs: tuple[str, ...],
) -> None:
    """Write instrument ID (a library id or a YAML file) as a REDCap data dictionary CSV."""
    instrument = _instrument(instrument_ref, library_dirs)
    try:
        text = export_redcap(instrument, language, record_id=not no_record_id)
    except RedcapExportError as exc:
        raise click.ClickException(str(exc)) from exc
    if out_path is None:
        click.echo(text, nl=False)
    else:
        Path(out_path).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out_path} ({len(instrument.items)} items)", err=True)


@click.command("redcap-import")
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the instrument YAML files (one per form).",
)
@click.option("--form", default=None, help="Import only this form.")
@click.option("--id", "instrument_id", default=None, help="Instrument id (with one form).")
@click.option("--language", default="en", show_default=True, help="Language of the wording.")
@click.option(
    "--skip-unsupported",
    is_flag=True,
    help="Skip calc, checkbox, notes, descriptive... fields (listed) instead of stopping.",
)
@click.option("--force", is_flag=True, help="Overwrite existing YAML files.")
def redcap_import(
    csv_path: str,
    out_dir: str,
    form: str | None,
    instrument_id: str | None,
    language: str,
    skip_unsupported: bool,
    force: bool,
) -> None:
    """Turn each form of a REDCap data dictionary into an instrument definition file."""
    text = Path(csv_path).read_text(encoding="utf-8-sig")
    try:
        result = read_redcap(
            text,
            instrument_id=instrument_id,
            form=form,
            language=language,
            skip_unsupported=skip_unsupported,
        )
    except RedcapImportError as exc:
        for problem in exc.problems:
            click.echo(f"{csv_path}: {problem}", err=True)
        if not skip_unsupported and any("not supported" in p for p in exc.problems):
            click.echo("(--skip-unsupported imports the other fields)", err=True)
        raise SystemExit(1) from None
    directory = Path(out_dir)
    targets = [directory / f"{instrument.id}.yaml" for instrument in result.instruments]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise click.ClickException(f"not overwriting {', '.join(existing)} (use --force)")
    for note in result.notes:
        click.echo(f"{csv_path}: {note}", err=True)
    directory.mkdir(parents=True, exist_ok=True)
    for instrument, path in zip(result.instruments, targets, strict=True):
        header = (
            f"# Imported from the REDCap data dictionary {Path(csv_path).name}, form "
            f"{instrument.short_name}.\n# Add the citation, licence and scoring before use.\n"
        )
        path.write_text(header + instrument_yaml(instrument), encoding="utf-8")
        load_instrument(path)  # what we wrote must load; a failure here is our bug, loudly
        click.echo(f"wrote {path} ({len(instrument.items)} items)")


@click.command("reliability")
@click.argument("instrument_ref", metavar="ID")
@click.option(
    "--responses",
    "responses_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV: one row per respondent and wave, one column per item (named by item id).",
)
@click.option("--wave-column", default="wave", show_default=True, help="Column naming the wave.")
@click.option("--subject-column", default="id", show_default=True, help="Respondent column.")
@click.option(
    "--listwise",
    is_flag=True,
    help="Use only respondents who answered every item of a score (default: pairwise).",
)
@click.option(
    "--missing-code",
    "missing_codes",
    multiple=True,
    metavar="TEXT",
    help="A cell value meaning 'not answered' (e.g. -99); blank cells always do.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the full-precision table as CSV.",
)
@library_option
def reliability(
    instrument_ref: str,
    responses_path: str,
    wave_column: str,
    subject_column: str,
    listwise: bool,
    missing_codes: tuple[str, ...],
    out_path: str | None,
    library_dirs: tuple[str, ...],
) -> None:
    """Alpha (Feldt CI), omega and item-total statistics per wave and score, then the ICC of
    each score across waves."""
    instrument = _instrument(instrument_ref, library_dirs)
    frame, _ = read_responses(responses_path, missing_codes)
    for column in (subject_column, wave_column):
        if column not in frame.columns:
            raise click.ClickException(
                f"{responses_path}: no column '{column}' (columns: {', '.join(frame.columns)})"
            )
    missing = "listwise" if listwise else "pairwise"
    try:
        # Imported here: psychometrics loads scipy.stats and pingouin, seconds on every CLI start.
        from instruments.psychometrics import reliability_by_wave

        table = reliability_by_wave(
            frame, instrument, subject=subject_column, wave=wave_column, missing=missing
        )
    except ValueError as exc:
        raise click.ClickException(f"{responses_path}: {exc}") from exc
    if out_path is not None:
        table.to_csv(out_path, index=False, lineterminator="\n")
    click.echo(_readable(table))
    if frame[wave_column].nunique() >= 2:
        for line in _icc_lines(instrument, frame, subject_column, wave_column):
            click.echo(line)


def _readable(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("value", "ci_low", "ci_high"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    for column in ("item", "note"):
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "")
    shown["n"] = shown["n"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return shown.to_string(index=False)


def _icc_lines(instrument: Instrument, frame: pd.DataFrame, subject: str, wave: str) -> list[str]:
    """The test-retest ICC(1,1) and ICC(A,1) of every score across the waves."""
    try:
        scored = score_frame(instrument, frame)
    except AnswerError as exc:
        return [f"ICC not computed: {exc}"]
    lines = ["", "Across waves (one score per respondent and wave; complete-case scoring):"]
    for score in instrument.scores:
        long = scored[[subject, wave, score.id]].dropna(subset=[score.id])
        try:
            from instruments.psychometrics import icc_repeated

            result = icc_repeated(long, subject=subject, wave=wave, score=score.id)
        except ValueError as exc:
            lines.append(f"  {score.id}: not computed: {exc}")
            continue
        row = result.table.set_index("Type")
        one, agreement = row.loc["ICC(1,1)"], row.loc["ICC(A,1)"]
        lines.append(
            f"  {score.id}: ICC(1,1) {one['ICC']:.3f} [{one['ci_low']:.2f}, {one['ci_high']:.2f}]"
            f", ICC(A,1) {agreement['ICC']:.3f}; {result.n_subjects} respondents, "
            f"{result.n_waves} waves"
        )
        if result.reason:
            lines.append(f"    {result.reason}")
    return lines


for _command in (redcap_export, redcap_import, reliability):
    instruments_group.add_command(_command)
