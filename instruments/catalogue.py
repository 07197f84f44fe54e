"""The instruments a deployment or study can use: the shipped library plus its own files.

    library = Library.load()                                  # instruments/library/*.yaml
    library = Library.load("study/instruments")               # + a study's own definitions
    library.get("who5"); library.list(); "ucla3" in library
    library.exclude_non_commercial()                          # only commercial_use: allowed
    library.localize("ucla3", "en")                           # MissingWordingError names the file

A directory contributes every `*.yaml` file in it: instrument definitions, and wording files
(`*.wording.yaml`, see `instruments.wording`) that are merged into the instrument they name.
Two definitions with the same id are an error naming both files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from .datafile import Problem, read_text, suggest
from .loader import InstrumentError, load_instrument, parse_wording_into, wording_target
from .schema import Instrument, Score
from .translations import LocalizedInstrument, default_wording_file, localize

LIBRARY_DIR = Path(__file__).resolve().parent / "library"
WORDING_SUFFIX = ".wording.yaml"


class UnknownInstrumentError(KeyError):
    """No instrument with this id (or it was excluded); the message suggests the closest id."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Entry:
    """An instrument with the files it came from."""

    instrument: Instrument
    path: Path
    wording_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Library:
    """A set of instrument definitions by id, and the ones a setting excluded (with why)."""

    entries: dict[str, Entry]
    excluded: dict[str, str]
    # Where this library's study keeps its files: the place to create a missing wording file.
    study_dir: Path | None = None

    @classmethod
    def load(
        cls, *sources: str | Path, builtin: bool = True, commercial_only: bool = False
    ) -> Library:
        """The shipped library (unless `builtin=False`) plus each directory or file in `sources`.

        Raises `InstrumentError` listing the problems of every file at once.
        """
        paths: list[Path] = list(_builtin_paths()) if builtin else []
        study_dir: Path | None = None
        for source in sources:
            source = Path(source)
            if source.is_dir():
                study_dir = study_dir or source
                paths += sorted(source.glob("*.yaml"))
            else:
                paths.append(source)
        library = cls(_load_entries(paths), {}, study_dir)
        return library.exclude_non_commercial() if commercial_only else library

    def exclude_non_commercial(self) -> Library:
        """Only the instruments whose licence allows commercial use without permission."""
        kept = {k: e for k, e in self.entries.items() if _commercial(e.instrument)}
        excluded = dict(self.excluded)
        for key, entry in self.entries.items():
            if key not in kept:
                use = entry.instrument.licence.commercial_use.replace("_", " ")
                excluded[key] = (
                    f"excluded because this deployment uses only instruments whose licence "
                    f"allows commercial use (its licence, {entry.instrument.licence.name}: "
                    f"commercial use {use})"
                )
        return replace(self, entries=kept, excluded=excluded)

    def get(self, instrument_id: str) -> Instrument:
        """The instrument `instrument_id`; `UnknownInstrumentError` says why there is none."""
        entry = self.entries.get(instrument_id)
        if entry is None:
            raise UnknownInstrumentError(self.why_unknown(instrument_id))
        return entry.instrument

    def why_unknown(self, instrument_id: str) -> str:
        """`unknown instrument 'x'; did you mean 'y'?`, or the reason it was excluded."""
        if instrument_id in self.excluded:
            return f"instrument '{instrument_id}' is {self.excluded[instrument_id]}"
        return f"unknown instrument '{instrument_id}'{suggest(instrument_id, self.entries)}"

    def entry(self, instrument_id: str) -> Entry:
        self.get(instrument_id)
        return self.entries[instrument_id]

    def list(self) -> list[Instrument]:
        """Every instrument, by id."""
        return [self.entries[key].instrument for key in sorted(self.entries)]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.entries))

    def __contains__(self, instrument_id: object) -> bool:
        return instrument_id in self.entries

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.entries)

    def localize(self, instrument_id: str, language: str) -> LocalizedInstrument:
        """The instrument in `language`; a `MissingWordingError` names the wording file to
        create in this library's study directory."""
        instrument = self.get(instrument_id)
        directory = str(self.study_dir) if self.study_dir is not None else None
        return localize(
            instrument, language, wording_file=default_wording_file(instrument, directory)
        )


def _commercial(instrument: Instrument) -> bool:
    return instrument.licence.commercial_use == "allowed"


@cache
def _builtin_paths() -> tuple[Path, ...]:
    return tuple(sorted(LIBRARY_DIR.glob("*.yaml")))


def _load_entries(paths: Iterable[Path]) -> dict[str, Entry]:
    problems: list[Problem] = []
    entries: dict[str, Entry] = {}
    wordings: list[tuple[Path, str]] = []
    for path in paths:
        if path.name.endswith(WORDING_SUFFIX):
            target, found = wording_target(path)
            problems += found
            if target is not None:
                wordings.append((path, target))
            continue
        try:
            instrument = _cached_load(path)
        except InstrumentError as exc:
            problems += exc.problems
            continue
        if instrument.id in entries:
            first = entries[instrument.id].path
            message = f"instrument '{instrument.id}' is already defined in {first}"
            problems.append(Problem(str(path), _line_of(path, "id"), "id", message))
            continue
        entries[instrument.id] = Entry(instrument, path)
    for path, target in wordings:
        if target not in entries:
            problems.append(
                Problem(
                    str(path),
                    _line_of(path, "instrument"),
                    "instrument",
                    f"unknown instrument '{target}'{suggest(target, entries)}",
                )
            )
            continue
        entry = entries[target]
        try:
            text, _ = read_text(path)
            merged = parse_wording_into(entry.instrument, text or "", str(path))
        except InstrumentError as exc:
            problems += exc.problems
            continue
        entries[target] = Entry(merged, entry.path, (*entry.wording_paths, path))
    if problems:
        raise InstrumentError(problems)
    return entries


def _cached_load(path: Path) -> Instrument:
    # The shipped files never change while a process runs, so they are parsed once.
    if path.parent == LIBRARY_DIR:
        return _builtin(path)
    return load_instrument(path)


@cache
def _builtin(path: Path) -> Instrument:
    return load_instrument(path)


def _line_of(path: Path, key: str) -> int:
    text, _ = read_text(path)
    for number, line in enumerate((text or "").splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return 1


def describe_score(score: Score) -> str:
    """How a score is computed, in one line: `sum of 5 items (who5_1, ...); all required`."""
    if score.transform is not None:
        formula = score.transform.of
        if score.transform.multiply != 1:
            formula += f" x {score.transform.multiply:g}"
        if score.transform.add:
            sign = "+" if score.transform.add > 0 else "-"
            formula += f" {sign} {abs(score.transform.add):g}"
        return formula
    parts = score.items or score.scores
    noun = "item" if score.items else "score"
    count = len(parts)
    plural = noun if count == 1 else f"{noun}s"
    text = f"{score.method} of {count} {plural} ({', '.join(parts)})"
    if score.min_answered is None or score.min_answered >= count:
        rule = "all required" if count > 1 else "required"
    else:
        rule = f"at least {score.min_answered} answered"
        if score.prorate:
            rule += ", sum prorated to all (flagged)"
    return f"{text}; {rule}"
