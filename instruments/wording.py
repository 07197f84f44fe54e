"""Wording files: item text the study team supplies for an instrument.

Some instruments cannot ship their item wording (its terms of use are unknown, or it was never
found in a public source); their definition says `wording: {status: local}` and carries
structure and scoring only. A wording file fills the gap, and the same format adds a
translation to an instrument that does ship its wording:

    instrument: ucla3
    source: Hughes et al. (2004), Table 1; copy held by the study team
    languages:
      en:
        instructions: (the instructions, as the study's copy of the form gives them)
        items:
          ucla3_1: How often do you feel that you lack companionship?
          ...
        anchors:                  # optional: labels for response-scale points
          frequency3: {1: Hardly ever, 2: Some of the time, 3: Often}
        scores: {total: Loneliness}   # optional: score labels

A wording file adds text; it never replaces text the definition ships (that would change a
validated instrument: define a custom instrument instead). Every item must have text in every
language the file gives.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .datafile import DataFile, suggest
from .schema import Identifier, Instrument, LanguageCode, Number, Section

NonEmpty = Annotated[str, Field(min_length=1)]


class LanguageWording(Section):
    """The text for one language."""

    items: dict[Identifier, NonEmpty] = Field(default_factory=dict)
    sms_text: dict[Identifier, NonEmpty] = Field(default_factory=dict)
    instructions: NonEmpty | None = None
    reference_period: NonEmpty | None = None
    anchors: dict[Identifier, dict[Number, NonEmpty]] = Field(default_factory=dict)
    scores: dict[Identifier, NonEmpty] = Field(default_factory=dict)


class WordingFile(Section):
    """A wording file: which instrument, where the text comes from, and the text by language."""

    instrument: Identifier
    source: str | None = None
    languages: Annotated[dict[LanguageCode, LanguageWording], Field(min_length=1)]


def parse_wording(file: DataFile) -> WordingFile | None:
    """The validated wording file, or None with its problems recorded in `file`."""
    data = file.mapping("the wording file", "a mapping with instrument and languages")
    if data is None:
        return None
    fields = file.sections(data, WordingFile, noun="key")
    if file.problems:
        return None
    return WordingFile(**fields)


def apply_wording(instrument: Instrument, wording: WordingFile, file: DataFile) -> Instrument:
    """`instrument` with the text of `wording` added; mistakes are recorded in `file`.

    The returned instrument lists the wording file's languages, and its `wording.source`
    names the file's source, so that reports can say where the text came from.
    """
    if wording.instrument != instrument.id:
        file.problem(
            ("instrument",),
            f"this wording is for '{wording.instrument}', but the instrument is '{instrument.id}'",
        )
        return instrument
    data = instrument.model_dump()
    items = {item["id"]: item for item in data["items"]}
    scores = {score["id"]: score for score in data["scores"]}
    for language, text in wording.languages.items():
        _Merge(file, data, items, scores, language).run(text)
    listed = list(data["languages"])
    data["languages"] = tuple(listed + [code for code in wording.languages if code not in listed])
    origin = wording.source or file.source
    data["wording"]["source"] = f"{data['wording']['source']}; local wording: {origin}"
    return Instrument.model_validate(data)


class _Merge:
    """Adding one language's text to the dumped definition `data`."""

    def __init__(
        self, file: DataFile, data: dict, items: dict, scores: dict, language: str
    ) -> None:
        self.file = file
        self.data = data
        self.items = items
        self.scores = scores
        self.language = language
        self.base = ("languages", language)

    def run(self, text: LanguageWording) -> None:
        for name in ("instructions", "reference_period"):
            value = getattr(text, name)
            if value is not None:
                self._put(self.data, name, value, (*self.base, name), f"the {name}")
        for name in ("items", "sms_text"):
            target = "text" if name == "items" else "sms_text"
            for item_id, value in getattr(text, name).items():
                item = self._known(item_id, self.items, "item", name)
                if item is not None:
                    self._put(item, target, value, (*self.base, name, item_id), item_id)
        for score_id, value in text.scores.items():
            score = self._known(score_id, self.scores, "score", "scores")
            if score is not None:
                self._put(score, "label", value, (*self.base, "scores", score_id), score_id)
        for scale_id, labels in text.anchors.items():
            self._anchors(scale_id, labels)
        missing = [key for key, item in self.items.items() if self.language not in item["text"]]
        if missing:
            self.file.problem(
                (*self.base, "items"),
                f"no text in {self.language} for item(s) {', '.join(missing)}",
            )

    def _known(self, key: str, known: dict, noun: str, section: str) -> dict | None:
        if key in known:
            return known[key]
        self.file.problem(
            (*self.base, section, key),
            f"the instrument has no {noun} '{key}'{suggest(key, known)}",
        )
        return None

    def _put(self, owner: dict, key: str, value: str, path: tuple, what: str) -> None:
        texts: dict[str, Any] = dict(owner.get(key) or {})
        if self.language in texts:
            self.file.problem(
                path,
                f"the definition already has text in {self.language} for {what}; a wording "
                "file adds text, it does not replace it (define a custom instrument instead)",
            )
            return
        texts[self.language] = value
        owner[key] = texts

    def _anchors(self, scale_id: str, labels: dict[float, str]) -> None:
        scales = self.data["response_scales"]
        path = (*self.base, "anchors", scale_id)
        if scale_id not in scales:
            hint = suggest(scale_id, scales)
            self.file.problem(path, f"the instrument has no response scale '{scale_id}'{hint}")
            return
        scale = scales[scale_id]
        anchors = {anchor["value"]: anchor for anchor in scale["anchors"]}
        for value, label in labels.items():
            point_path = (*path, _key(value))
            steps = (value - scale["min"]) / scale["step"]
            if not (scale["min"] <= value <= scale["max"] and abs(steps - round(steps)) < 1e-9):
                self.file.problem(
                    point_path,
                    f"{value:g} is not a point of the scale ({scale['min']:g} to "
                    f"{scale['max']:g} in steps of {scale['step']:g})",
                )
                continue
            anchor = anchors.setdefault(value, {"value": value, "label": {}})
            self._put(anchor, "label", label, point_path, f"the label of {value:g}")
        scale["anchors"] = tuple(sorted(anchors.values(), key=lambda anchor: anchor["value"]))


def _key(value: float) -> str:
    """How YAML wrote a numeric key, as the document's line index stores it."""
    return str(int(value)) if float(value).is_integer() else str(value)
