"""The protocol's instruments, resolved against the instrument library.

Every instrument id a protocol declares must name a library instrument (or one a study file
defines with `file:`); a `wording:` file supplies local wording or a translation. Stratifying
on an instrument's score needs that score to exist. Mistakes in the protocol come back as
`(path, message)` findings; mistakes inside an instrument or wording file as that file's own
`Problem`s.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from instruments.catalogue import Library
from instruments.datafile import Problem, suggest
from instruments.loader import InstrumentError, parse_instrument, parse_wording_into
from instruments.schema import Instrument

Finding = tuple[tuple, str]


@cache
def shipped_library() -> Library:
    """The instrument library shipped with Flourish (loaded once per process)."""
    return Library.load()


@dataclass
class Resolution:
    instruments: dict[str, Instrument] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def resolve_instruments(
    sections: dict[str, Any],
    texts: Mapping[str, str],
    library: Library,
    source_name: str,
) -> Resolution:
    """Each declared instrument's definition; `texts` holds the referenced files by path."""
    result = Resolution()
    base = posixpath.dirname(source_name.replace("\\", "/"))
    for i, ref in enumerate(sections.get("instruments") or ()):
        path = ("instruments", i)
        instrument = _definition(ref, path, texts, library, base, result)
        if instrument is None:
            continue
        if ref.wording:
            text = texts.get(posixpath.normpath(ref.wording))
            if text is None:
                continue  # the missing file is already reported
            try:
                instrument = parse_wording_into(
                    instrument, text, posixpath.normpath(posixpath.join(base, ref.wording))
                )
            except InstrumentError as exc:
                result.problems += exc.problems
                continue
        result.instruments[ref.id] = instrument
    allocation = sections.get("allocation")
    if allocation is not None:
        result.findings += _strata_scores(allocation, result.instruments)
    return result


def _definition(
    ref: Any, path: tuple, texts: Mapping[str, str], library: Library, base: str, result: Resolution
) -> Instrument | None:
    if not ref.file:
        if ref.id not in library:
            result.findings.append((path, library.why_unknown(ref.id)))
            return None
        return library.get(ref.id)
    text = texts.get(posixpath.normpath(ref.file))
    if text is None:
        return None  # the missing file is already reported
    try:
        instrument = parse_instrument(text, posixpath.normpath(posixpath.join(base, ref.file)))
    except InstrumentError as exc:
        result.problems += exc.problems
        return None
    if instrument.id != ref.id:
        result.findings.append(
            ((*path, "id"), f"'{ref.file}' defines instrument '{instrument.id}', not '{ref.id}'")
        )
        return None
    return instrument


def _strata_scores(allocation: Any, instruments: dict[str, Instrument]) -> list[Finding]:
    findings: list[Finding] = []
    for i, factor in enumerate(allocation.strata):
        instrument = instruments.get(factor.instrument) if factor.instrument else None
        if instrument is None or factor.score is None:
            continue
        known = [score.id for score in instrument.scores]
        if factor.score not in known:
            findings.append(
                (
                    ("allocation", "strata", i, "score"),
                    f"instrument '{instrument.id}' has no score '{factor.score}'"
                    f"{suggest(factor.score, known)} (scores: {', '.join(known)})",
                )
            )
    return findings
