"""`flourish instruments`: the validated instrument library, listed and shown.

Neither command needs a database. `--include` adds a study's own instrument directory or files
(custom definitions and `*.wording.yaml` wording files); `--commercial-only` (or
FLOURISH_COMMERCIAL_INSTRUMENTS_ONLY=1, a deployment setting) keeps only instruments whose
licence allows commercial use.
"""

from __future__ import annotations

import json

import click

from instruments.catalogue import Library, UnknownInstrumentError, describe_score
from instruments.checks import scale_points
from instruments.loader import InstrumentError
from instruments.schema import Instrument
from instruments.translations import fallback_chain, pick

include_option = click.option(
    "--include",
    "includes",
    multiple=True,
    type=click.Path(exists=True),
    help="A study's instrument directory or file (repeatable).",
)
commercial_option = click.option(
    "--commercial-only",
    is_flag=True,
    envvar="FLOURISH_COMMERCIAL_INSTRUMENTS_ONLY",
    help="Only instruments whose licence allows commercial use.",
)


@click.group("instruments")
def instruments_group() -> None:
    """Validated instruments: list the library, show a definition."""


def _library(includes: tuple[str, ...], commercial_only: bool) -> Library:
    try:
        return Library.load(*includes, commercial_only=commercial_only)
    except InstrumentError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None


def summary(instrument: Instrument) -> dict:
    """The catalogue row of an instrument (also the `--json` form)."""
    return {
        "id": instrument.id,
        "name": instrument.name,
        "short_name": instrument.short_name,
        "version": instrument.version,
        "items": len(instrument.items),
        "languages": list(instrument.languages),
        "licence": instrument.licence.name,
        "commercial_use": instrument.licence.commercial_use,
        "wording": instrument.wording.status,
        "wording_verified": instrument.wording.verified_against_official_form,
        "sms_suitable": instrument.sms.suitable,
        "citation": instrument.citation,
        "doi": instrument.doi,
    }


@instruments_group.command("list")
@include_option
@commercial_option
@click.option("--json", "as_json", is_flag=True, help="One JSON array of catalogue rows.")
def list_instruments(includes: tuple[str, ...], commercial_only: bool, as_json: bool) -> None:
    """List every instrument: items, languages, commercial use, wording, SMS suitability."""
    library = _library(includes, commercial_only)
    rows = [summary(instrument) for instrument in library.list()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    header = ("ID", "NAME", "ITEMS", "LANGUAGES", "COMMERCIAL USE", "WORDING", "SMS")
    table = [header] + [
        (
            row["id"],
            row["short_name"],
            str(row["items"]),
            ",".join(row["languages"]),
            row["commercial_use"].replace("_", " "),
            row["wording"],
            "yes" if row["sms_suitable"] else "no",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    if library.excluded:
        click.echo(
            f"\n{len(library.excluded)} excluded (licence does not allow commercial use): "
            f"{', '.join(sorted(library.excluded))}"
        )


@instruments_group.command("show")
@click.argument("instrument_id")
@click.option("--language", "-l", default=None, help="Show the text in this language.")
@include_option
@commercial_option
def show(
    instrument_id: str, language: str | None, includes: tuple[str, ...], commercial_only: bool
) -> None:
    """Show INSTRUMENT_ID: citation, licence, instructions, items, scales and scores."""
    library = _library(includes, commercial_only)
    try:
        instrument = library.get(instrument_id)
    except UnknownInstrumentError as exc:
        raise click.ClickException(str(exc)) from None
    for line in render(instrument, language or instrument.languages[0]):
        click.echo(line)


def render(instrument: Instrument, language: str) -> list[str]:
    """The `show` text of `instrument`, every text in `language` with fallback."""
    chain = fallback_chain(instrument, language)

    def text(texts: dict | None) -> str | None:
        found = pick(texts, chain)
        if found is None:
            return None
        shown, value = found
        return value if shown.lower() == language.lower() else f"{value} [{shown}]"

    licence = instrument.licence
    wording = instrument.wording
    verified = "verified" if wording.verified_against_official_form else "not verified"
    lines = [
        f"{instrument.name} ({instrument.short_name}), id {instrument.id}",
        f"Version: {instrument.version}",
        f"Citation: {instrument.citation}",
    ]
    if instrument.doi:
        lines.append(f"DOI: {instrument.doi}")
    lines.append(
        f"Licence: {licence.name}; commercial use: {licence.commercial_use.replace('_', ' ')}"
    )
    for label, value in (
        ("Attribution", licence.attribution),
        ("URL", licence.url),
        ("Terms", licence.notes),
    ):
        if value:
            lines.append(f"  {label}: {value}")
    lines.append(f"Wording: {wording.status} ({verified} against the official form)")
    lines.append(f"  Source: {wording.source}")
    if wording.notes:
        lines.append(f"  Notes: {wording.notes}")
    lines.append(f"Languages: {', '.join(instrument.languages)} (showing {language})")
    for label, value in (
        ("Reference period", instrument.reference_period),
        ("Instructions", instrument.instructions),
    ):
        shown = text(value)
        if shown:
            lines.append(f"{label}: {shown}")
    lines += ["", "Response scales:"]
    for key, scale in instrument.response_scales.items():
        points = f"{scale.min:g} to {scale.max:g}"
        if scale.step != 1:
            points += f" in steps of {scale.step:g}"
        anchors = "; ".join(f"{a.value:g} = {text(a.label) or '(no label)'}" for a in scale.anchors)
        lines.append(
            f"  {key}: {points} ({scale_points(scale)} points)"
            + (f"; {anchors}" if anchors else "")
        )
    lines += ["", f"Items ({len(instrument.items)}):"]
    for number, item in enumerate(instrument.items, 1):
        flags = item.scale + (", reversed" if item.reverse else "")
        wording_text = text(item.text) or "(no text: supply it in a wording file)"
        lines.append(f"  {number:>2}. {item.id} [{flags}] {wording_text}")
    lines += ["", "Scores:"]
    for score in instrument.scores:
        label = text(score.label) or score.id
        lines.append(f"  {score.id} ({score.kind}): {label} = {describe_score(score)}")
        if score.interpretation:
            lines.append(f"      {score.interpretation}")
    sms = "suitable" if instrument.sms.suitable else "not suitable"
    lines += ["", f"SMS: {sms}" + (f"; {instrument.sms.notes}" if instrument.sms.notes else "")]
    if instrument.reliability:
        lines.append("Reliability (published):")
        for report in instrument.reliability:
            checked = "verified" if report.verified else "unverified"
            target = f" of {report.score}" if report.score else ""
            lines.append(
                f"  {report.statistic}{target} = {report.value:g}; {report.sample}; "
                f"{report.source} ({checked})"
            )
    return lines


COMMANDS = [instruments_group]
