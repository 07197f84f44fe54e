"""`flourish instruments score`: score a CSV of responses with a library or custom instrument.

The CSV has one row per respondent and one column per item, named by item id; other columns
(respondent id, wave, ...) are carried through unchanged. The output is the same table plus one
column per score and a `<score>_flag` column where a score was prorated or computed from fewer
than all its items. Answers off the scale stop the run: every one is reported as
`FILE.csv:LINE: column: message` (LINE counts the header as line 1) and nothing is written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click
import pandas as pd

from instruments.catalogue import Library, UnknownInstrumentError
from instruments.loader import InstrumentError, load_instrument
from instruments.schema import Instrument
from instruments.scoring import FLAG_SUFFIX, AnswerError, score_frame

from .instruments import instruments_group

COMMANDS: list[click.Command] = []  # attached to `flourish instruments` below, not to `main`

HEADER_LINE = 1


class ResponsesFileError(click.ClickException):
    """The responses file cannot be read as a table; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))

    def show(self, file=None) -> None:
        click.echo(self.message, err=True)


@click.command("score")
@click.argument("instrument_ref", metavar="ID")
@click.option(
    "--responses",
    "responses_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV with one row per respondent and one column per item (named by item id).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the scored CSV here (default: standard output).",
)
@click.option(
    "--language",
    default="en",
    show_default=True,
    help="Language of the score labels in the summary.",
)
@click.option(
    "--library",
    "library_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A study's directory of instrument and wording files, searched with the library.",
)
@click.option(
    "--missing-code",
    "missing_codes",
    multiple=True,
    metavar="TEXT",
    help="A cell value meaning 'not answered' (e.g. -99 or NA); blank cells always do.",
)
def score(
    instrument_ref: str,
    responses_path: str,
    out_path: str | None,
    language: str,
    library_dirs: tuple[str, ...],
    missing_codes: tuple[str, ...],
) -> None:
    """Score the responses in a CSV with instrument ID (a library id or a YAML file's path).

    Writes the table with score columns added; prints a summary on standard error.
    """
    instrument = _instrument(instrument_ref, library_dirs)
    frame, lines = read_responses(responses_path, missing_codes)
    try:
        scored = score_frame(instrument, frame)
    except AnswerError as exc:
        for problem in exc.problems:
            line = HEADER_LINE if problem.row is None else lines[problem.row]
            click.echo(f"{responses_path}:{line}: {problem.item}: {problem.message}", err=True)
        raise SystemExit(1) from None
    text = _to_csv(instrument, scored)
    if out_path is None:
        click.echo(text, nl=False)
    else:
        Path(out_path).write_text(text, encoding="utf-8")
    for line in summary(instrument, scored, language):
        click.echo(line, err=True)


instruments_group.add_command(score)


def _instrument(reference: str, library_dirs: tuple[str, ...]) -> Instrument:
    as_path = Path(reference)
    try:
        if as_path.suffix in (".yaml", ".yml") or as_path.is_file():
            return load_instrument(as_path)
        return Library.load(*library_dirs).get(reference)
    except InstrumentError as exc:
        raise click.ClickException(str(exc)) from exc
    except UnknownInstrumentError as exc:
        raise click.ClickException(str(exc)) from exc


def read_responses(
    path: str, missing_codes: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, list[int]]:
    """The CSV as a table of text cells, and the line each row starts on (for messages).

    Cells stay text so that carried columns are written back exactly as read ("007" stays
    "007"); scoring parses the item columns. Cells equal to a missing code become blank.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ResponsesFileError(
                [f"{path}:{HEADER_LINE}: the file is empty; expected a header"]
            )
        problems = [
            f"{path}:{HEADER_LINE}: {name}: the column appears twice"
            for name in sorted({name for name in header if header.count(name) > 1})
        ]
        rows: list[list[str]] = []
        lines: list[int] = []
        start = reader.line_num + 1
        for record in reader:
            if not any(cell.strip() for cell in record):
                start = reader.line_num + 1
                continue
            if len(record) != len(header):
                problems.append(
                    f"{path}:{start}: the row has {len(record)} cells; the header has {len(header)}"
                )
            rows.append(record)
            lines.append(start)
            start = reader.line_num + 1
    if problems:
        raise ResponsesFileError(problems)
    frame = pd.DataFrame(rows, columns=header, dtype="object")
    if missing_codes:
        codes = {code.strip() for code in missing_codes}
        frame = frame.map(lambda cell: "" if cell.strip() in codes else cell)
    return frame, lines


def _to_csv(instrument: Instrument, scored: pd.DataFrame) -> str:
    out = scored.copy()
    for score in instrument.scores:
        out[score.id] = [_format_score(value) for value in out[score.id]]
        flag = score.id + FLAG_SUFFIX
        if flag in out:
            out[flag] = out[flag].fillna("")
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def _format_score(value: float) -> str:
    """Blank when missing; 13 rather than 13.0; otherwise every digit (no silent rounding)."""
    if pd.isna(value):
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def summary(instrument: Instrument, scored: pd.DataFrame, language: str) -> list[str]:
    """One line of totals, then one line per score that is missing or flagged for anyone."""
    complete = missing = flagged = 0
    details = []
    for score in instrument.scores:
        values = scored[score.id]
        flags = scored.get(score.id + FLAG_SUFFIX, pd.Series(None, index=scored.index))
        n_missing = int(values.isna().sum())
        n_flagged = int((flags.notna() & values.notna()).sum())
        missing += n_missing
        flagged += n_flagged
        complete += len(values) - n_missing - n_flagged
        if n_missing or n_flagged:
            label = (
                score.label.get(language)
                or score.label.get("en")
                or next(iter(score.label.values()), score.id)
            )
            details.append(f"  {score.id} ({label}): {n_missing} missing, {n_flagged} flagged")
    respondents = len(scored)
    noun = "respondent" if respondents == 1 else "respondents"
    head = (
        f"{instrument.short_name}: {respondents} {noun}; scores: {complete} complete, "
        f"{missing} missing, {flagged} prorated or from fewer items (flagged)"
    )
    return [head, *details]
