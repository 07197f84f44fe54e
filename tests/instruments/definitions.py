"""A minimal valid instrument definition, and helpers to break it and locate lines."""

from __future__ import annotations

MINIMAL = """\
id: mood3
name: Three mood items
short_name: Mood-3
version: "1"
citation: Written for the tests.
licence:
  name: CC0
  commercial_use: allowed
wording:
  status: shipped
  source: the tests
languages: [en, de]
response_scales:
  agree5:
    min: 1
    max: 5
    anchors:
      - {value: 1, label: {en: Disagree, de: Stimme nicht zu}}
      - {value: 5, label: {en: Agree, de: Stimme zu}}
items:
  - {id: mood_1, scale: agree5, text: {en: I feel calm., de: Ich bin ruhig.}}
  - {id: mood_2, scale: agree5, text: {en: I feel cheerful., de: Ich bin fröhlich.}}
  - {id: mood_3, scale: agree5, reverse: true, text: {en: I feel tense., de: Ich bin angespannt.}}
scores:
  - id: total
    label: {en: Mood, de: Stimmung}
    kind: total
    items: [mood_1, mood_2, mood_3]
    method: sum
  - id: percent
    label: {en: Mood (percent), de: Stimmung (Prozent)}
    kind: derived
    transform: {of: total, multiply: 6.25, add: -18.75}
sms:
  suitable: true
"""

LOCAL = (
    MINIMAL.replace("  status: shipped\n", "  status: local\n")
    .replace(", text: {en: I feel calm., de: Ich bin ruhig.}", "")
    .replace(", text: {en: I feel tense., de: Ich bin angespannt.}", "")
)

SOURCE = "mood3.yaml"


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} occurs {len(hits)} time(s)"
    return hits[occurrence - 1]


def edit(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence of `old`, so a test cannot silently edit nothing."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)
