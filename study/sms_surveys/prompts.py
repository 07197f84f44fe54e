"""What an SMS survey says, and how a reply is read.

One message asks one item: its `sms_text` (else its `text`) in the participant's language with
the instrument's fallback, preceded on an instrument's first item by its reference period, and
followed by the allowed answers: `Reply 0-5 (0 = At no time, 5 = All of the time)`. Scales with
at most four labelled points list every label; longer ones name the two ends. An `sms_text` that
already names both ends of the scale (`Reply 0 (not at all) to 10 (extremely).`) is sent as is.

A reply is valid when it holds exactly one number and nothing but spaces and punctuation around
it, and the number is a point of the item's scale. Anything else is re-asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from instruments.translations import LocalizedInstrument, LocalizedItem, LocalizedScale

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "answers": "Reply {low}-{high}",
        "answers.step": "Reply {low}-{high} in steps of {step}",
        "anchor": "{value} = {label}",
        "period": "Thinking of {period}:",
        "question": "{position}/{total} {text} {answers}",
        "invitation": "{invitation}\nOr answer here by text, one number per reply:\n{question}",
        "reminder": "{invitation}\nOr answer here by text:\n{question}",
        "invalid": "Sorry, please reply with one number from {low} to {high}.\n{question}",
        "thanks": "Thank you, that was the last question. Your answers are saved.",
        "closed": "Sorry, this questionnaire has closed, so we could not save your answer. "
        "Thank you all the same.",
    },
}
DEFAULT_LANGUAGE = "en"
# Scales with more labelled points than this name only their two ends.
MAX_LISTED_ANCHORS = 4

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_FILLER = re.compile(r"[\s.!?,;:'\"()]*")


def text(language: str, key: str, **values: object) -> str:
    """The sentence `key` in `language` (its base language, else English), filled in."""
    table = STRINGS.get(language) or STRINGS.get(language.split("-")[0], {})
    template = table.get(key) or STRINGS[DEFAULT_LANGUAGE][key]
    return template.format(**values)


@dataclass(frozen=True)
class Question:
    """One item as it is asked: where it is in the occasion and the scale it is answered on."""

    instrument: LocalizedInstrument
    item: LocalizedItem
    position: int
    total: int
    first_of_instrument: bool


def number(value: float) -> str:
    """A scale value as people write it: `3`, `2.5`."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def allowed_answers(scale: LocalizedScale, language: str) -> str:
    """`Reply 0-5 (0 = At no time, 5 = All of the time)`: the range and its labels."""
    low, high = number(scale.min), number(scale.max)
    if scale.step == 1:
        line = text(language, "answers", low=low, high=high)
    else:
        line = text(language, "answers.step", low=low, high=high, step=number(scale.step))
    anchors = sorted(scale.anchors, key=lambda anchor: anchor.value)
    if len(anchors) > MAX_LISTED_ANCHORS:
        anchors = [anchors[0], anchors[-1]]
    if not anchors:
        return line
    labels = ", ".join(
        text(language, "anchor", value=number(anchor.value), label=anchor.label)
        for anchor in anchors
    )
    return f"{line} ({labels})"


def ask(question: Question) -> str:
    """The message that asks `question`."""
    item, language = question.item, question.instrument.language
    wording = item.sms_text or item.text
    if question.first_of_instrument and question.instrument.reference_period and not item.sms_text:
        wording = (
            f"{text(language, 'period', period=question.instrument.reference_period)} {wording}"
        )
    answers = "" if _names_both_ends(wording, item.scale) else allowed_answers(item.scale, language)
    return text(
        language,
        "question",
        position=question.position,
        total=question.total,
        text=wording,
        answers=answers,
    ).rstrip()


def reask(question: Question) -> str:
    """The message after an invalid reply: the allowed range, then the question again."""
    scale = question.item.scale
    return text(
        question.instrument.language,
        "invalid",
        low=number(scale.min),
        high=number(scale.max),
        question=ask(question),
    )


def read_answer(body: str, scale: LocalizedScale) -> float | None:
    """The scale value `body` gives, or None if it is not exactly one allowed number."""
    numbers = _NUMBER.findall(body)
    if len(numbers) != 1:
        return None
    rest = _NUMBER.sub("", body, count=1)
    if not _FILLER.fullmatch(rest):
        return None
    value = float(numbers[0].replace(",", "."))
    if value < scale.min or value > scale.max:
        return None
    steps = (value - scale.min) / scale.step
    if abs(steps - round(steps)) > 1e-9:
        return None
    return value


def _names_both_ends(wording: str, scale: LocalizedScale) -> bool:
    found = set(re.findall(r"(?<![\d.])\d+(?:\.\d+)?(?!\.?\d)", wording))
    return number(scale.min) in found and number(scale.max) in found
