"""From an instrument definition file to a validated `Instrument`, or an `InstrumentError`.

    who5 = load_instrument("instruments/library/who5.yaml")
    ucla3 = load_instrument("instruments/library/ucla3.yaml", wording="study/ucla3.wording.yaml")

The pipeline, as for protocols: YAML with line numbers -> each top-level key against the schema
(a mistake in one does not hide mistakes in another) -> cross-field checks on the keys that
passed -> the study's wording file, if any. Every problem is reported in one pass as
`FILE:LINE: field: message`; unknown keys come with the closest allowed one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter

from .checks import cross_check
from .datafile import INVALID, DataFile, DataFileError, Problem, read_text
from .schema import Instrument
from .wording import apply_wording, parse_wording


class InstrumentError(DataFileError):
    """An instrument definition or wording file failed to load; `.problems` lists every mistake."""


def parse_instrument(text: str, source_name: str = "<instrument>") -> Instrument:
    """Validate the instrument definition `text`, naming `source_name` in problems."""
    file = DataFile(text, source_name)
    instrument = _definition(file)
    if instrument is None:
        raise InstrumentError(file.problems)
    return instrument


def parse_wording_into(instrument: Instrument, text: str, source_name: str) -> Instrument:
    """`instrument` with the wording file `text` merged in (see `instruments.wording`)."""
    file = DataFile(text, source_name)
    wording = parse_wording(file)
    if wording is not None:
        instrument = apply_wording(instrument, wording, file)
    if file.problems:
        raise InstrumentError(file.problems)
    return instrument


def load_instrument(path: str | Path, *, wording: str | Path | None = None) -> Instrument:
    """Read and validate the definition at `path`, and merge the wording file `wording`."""
    instrument = parse_instrument(_read(path), str(path))
    if wording is not None:
        instrument = parse_wording_into(instrument, _read(wording), str(wording))
    return instrument


def wording_target(path: str | Path) -> tuple[str | None, list[Problem]]:
    """The instrument id a wording file is for (its `instrument:` key), without validating it."""
    text, problems = read_text(path)
    if text is None:
        return None, problems
    file = DataFile(text, str(path))
    data = file.mapping("the wording file", "a mapping with instrument and languages")
    if data is None:
        return None, file.problems
    target = data.get("instrument")
    if not isinstance(target, str):
        file.problem(("instrument",), "missing required key 'instrument' (the instrument's id)")
        return None, file.problems
    return target, []


def _read(path: str | Path) -> str:
    text, problems = read_text(path)
    if text is None:
        raise InstrumentError(problems)
    return text


def _definition(file: DataFile) -> Instrument | None:
    data = file.mapping("the instrument definition", "a mapping of keys")
    if data is None:
        return None
    fields = file.sections(data, Instrument, noun="key")
    for path, message in cross_check(fields):
        file.problem(path, message)
    if file.problems:
        return None
    # The model's own validators (beyond its fields) run here; their errors are located too.
    instrument = file.validate((), data, _ADAPTER, Instrument)
    return None if instrument is INVALID else instrument


_ADAPTER = TypeAdapter(Instrument)
