"""An instrument as a participant sees it: every text in their language, with fallback.

Each text (item, instructions, reference period, anchor label, score label) is looked up in
the requested language, then its base languages (`pt-BR` -> `pt`), then the instrument's first
language. Language tags compare case-insensitively.

    view = localize(instrument, "pt-BR")    # MissingWordingError if an item has no text at all
    view.items[0].text, view.items[0].language   # the text and the language it is in
    ready_for(instrument, "en")               # False while local wording is missing
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .schema import Instrument, Item

WORDING_DOCS = 'docs/instruments.md, "Wording files"'


class MissingWordingError(LookupError):
    """The instrument cannot be administered: some items have no text in any usable language.

    `.missing` lists those item ids; `.wording_file` is where the study team should put the
    text (when the caller knows its study's instrument directory).
    """

    def __init__(
        self, instrument: Instrument, language: str, missing: tuple[str, ...], wording_file: str
    ) -> None:
        self.instrument_id = instrument.id
        self.language = language
        self.missing = missing
        self.wording_file = wording_file
        why = (
            "its wording is not shipped with Flourish (wording.status: local)"
            if instrument.wording.status == "local"
            else f"the definition gives no text in {language} or a fallback language"
        )
        super().__init__(
            f"instrument '{instrument.id}' cannot be administered in {language}: "
            f"no text for item(s) {', '.join(missing)}; {why}. Create the wording file "
            f"{wording_file} with text for these items and load the instrument with it "
            f"(see {WORDING_DOCS})."
        )


@dataclass(frozen=True)
class LocalizedAnchor:
    value: float
    label: str


@dataclass(frozen=True)
class LocalizedScale:
    min: float
    max: float
    step: float
    anchors: tuple[LocalizedAnchor, ...]


@dataclass(frozen=True)
class LocalizedItem:
    """An item's text in one language; `language` is the one actually used (after fallback)."""

    id: str
    text: str
    language: str
    scale: LocalizedScale
    reverse: bool
    sms_text: str | None


@dataclass(frozen=True)
class LocalizedInstrument:
    """Everything a survey page or SMS conversation shows, in one language."""

    id: str
    name: str
    language: str
    instructions: str | None
    reference_period: str | None
    items: tuple[LocalizedItem, ...]
    score_labels: Mapping[str, str]

    @property
    def fell_back(self) -> tuple[str, ...]:
        """The items shown in another language than the one requested."""
        return tuple(item.id for item in self.items if item.language != self.language)


def fallback_chain(instrument: Instrument, language: str) -> tuple[str, ...]:
    """The languages tried for `language`: itself, its base languages, the instrument's first."""
    chain: list[str] = []
    parts = language.split("-")
    for end in range(len(parts), 0, -1):
        chain.append("-".join(parts[:end]))
    chain.append(instrument.languages[0])
    unique: dict[str, str] = {}
    for code in chain:
        unique.setdefault(code.lower(), code)
    return tuple(unique.values())


def pick(texts: Mapping[str, str] | None, chain: tuple[str, ...]) -> tuple[str, str] | None:
    """`(language, text)` for the first language of `chain` that `texts` has, else None."""
    if not texts:
        return None
    by_lower = {code.lower(): (code, text) for code, text in texts.items()}
    for language in chain:
        found = by_lower.get(language.lower())
        if found is not None:
            return found
    return None


def missing_wording(instrument: Instrument, language: str) -> tuple[str, ...]:
    """The ids of items that have no text in `language` or any of its fallbacks."""
    chain = fallback_chain(instrument, language)
    return tuple(item.id for item in instrument.items if pick(item.text, chain) is None)


def ready_for(instrument: Instrument, language: str) -> bool:
    """True if every item can be shown in `language` (directly or through fallback)."""
    return not missing_wording(instrument, language)


def item_text(instrument: Instrument, item_id: str, language: str) -> str:
    """The text of one item in `language`, with fallback (KeyError for an unknown item)."""
    item = instrument.item(item_id)
    found = pick(item.text, fallback_chain(instrument, language))
    if found is None:
        hint = default_wording_file(instrument)
        raise MissingWordingError(instrument, language, (item_id,), hint)
    return found[1]


def default_wording_file(instrument: Instrument, directory: str | None = None) -> str:
    """Where a study keeps the wording for `instrument`: `<directory>/<id>.wording.yaml`."""
    name = f"{instrument.id}.wording.yaml"
    if directory is None:
        return f"{name} in the study's instruments directory"
    return f"{directory.rstrip('/')}/{name}"


def localize(
    instrument: Instrument, language: str, *, wording_file: str | None = None
) -> LocalizedInstrument:
    """The administrable form of `instrument` in `language`.

    Raises `MissingWordingError` naming every item without text, and `wording_file` (or the
    conventional name) as the file to create.
    """
    missing = missing_wording(instrument, language)
    if missing:
        raise MissingWordingError(
            instrument, language, missing, wording_file or default_wording_file(instrument)
        )
    chain = fallback_chain(instrument, language)
    return LocalizedInstrument(
        id=instrument.id,
        name=instrument.name,
        language=language,
        instructions=_text(instrument.instructions, chain),
        reference_period=_text(instrument.reference_period, chain),
        items=tuple(_item(instrument, item, chain) for item in instrument.items),
        score_labels={
            score.id: _text(score.label, chain) or score.id for score in instrument.scores
        },
    )


require_wording = localize


def _text(texts: Mapping[str, str] | None, chain: tuple[str, ...]) -> str | None:
    found = pick(texts, chain)
    return None if found is None else found[1]


def _item(instrument: Instrument, item: Item, chain: tuple[str, ...]) -> LocalizedItem:
    found = pick(item.text, chain)
    assert found is not None  # localize() checked every item first
    scale = instrument.scale_of(item)
    anchors = tuple(
        LocalizedAnchor(anchor.value, label)
        for anchor in scale.anchors
        if (label := _text(anchor.label, chain)) is not None
    )
    return LocalizedItem(
        id=item.id,
        text=found[1],
        language=found[0],
        scale=LocalizedScale(scale.min, scale.max, scale.step, anchors),
        reverse=item.reverse,
        sms_text=_text(item.sms_text, chain),
    )
