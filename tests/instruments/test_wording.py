"""Wording files: the study team's text for local-wording instruments, and translations."""

from __future__ import annotations

import pytest

from instruments.loader import InstrumentError, load_instrument
from instruments.translations import MissingWordingError, localize, ready_for

from .definitions import LOCAL, MINIMAL, line_of

WORDING = """\
instrument: mood3
source: the study's licensed copy
languages:
  en:
    items:
      mood_1: I feel calm.
      mood_3: I feel tense.
"""


@pytest.fixture
def local(tmp_path):
    path = tmp_path / "mood3.yaml"
    path.write_text(LOCAL)
    return path


def write(tmp_path, text: str):
    path = tmp_path / "mood3.wording.yaml"
    path.write_text(text)
    return path


def problems_of(definition, wording) -> list[str]:
    with pytest.raises(InstrumentError) as caught:
        load_instrument(definition, wording=wording)
    return [str(problem) for problem in caught.value.problems]


def test_without_wording_a_local_instrument_loads_but_cannot_be_administered(local):
    instrument = load_instrument(local)
    assert not ready_for(instrument, "en")
    with pytest.raises(MissingWordingError) as caught:
        localize(instrument, "en", wording_file="study/instruments/mood3.wording.yaml")
    assert caught.value.missing == ("mood_1", "mood_3")
    assert str(caught.value) == (
        "instrument 'mood3' cannot be administered in en: no text for item(s) mood_1, mood_3; "
        "its wording is not shipped with Flourish (wording.status: local). Create the wording "
        "file study/instruments/mood3.wording.yaml with text for these items and load the "
        'instrument with it (see docs/instruments.md, "Wording files").'
    )


def test_a_wording_file_completes_a_local_instrument(local, tmp_path):
    instrument = load_instrument(local, wording=write(tmp_path, WORDING))
    assert ready_for(instrument, "en")
    assert instrument.item("mood_1").text == {"en": "I feel calm."}
    assert instrument.item("mood_2").text == {"en": "I feel cheerful.", "de": "Ich bin fröhlich."}
    assert instrument.wording.source.endswith("; local wording: the study's licensed copy")
    assert localize(instrument, "en").items[2].text == "I feel tense."


def test_the_wording_file_must_give_every_item_a_text(local, tmp_path):
    text = WORDING.replace("      mood_3: I feel tense.\n", "")
    path = write(tmp_path, text)
    assert problems_of(local, path) == [
        f"{path}:{line_of(text, 'items:')}: languages.en.items: no text in en for item(s) mood_3"
    ]


def test_unknown_items_in_a_wording_file_are_suggested(local, tmp_path):
    text = WORDING + "      mood_4: Something else.\n"
    path = write(tmp_path, text)
    assert problems_of(local, path) == [
        f"{path}:{line_of(text, 'mood_4')}: languages.en.items.mood_4: "
        "the instrument has no item 'mood_4'; did you mean 'mood_3'?"
    ]


def test_a_wording_file_cannot_replace_shipped_text(local, tmp_path):
    text = WORDING + "      mood_2: I feel happy.\n"
    path = write(tmp_path, text)
    assert problems_of(local, path) == [
        f"{path}:{line_of(text, 'mood_2')}: languages.en.items.mood_2: the definition already "
        "has text in en for mood_2; a wording file adds text, it does not replace it (define a "
        "custom instrument instead)"
    ]


def test_a_wording_file_names_its_instrument(local, tmp_path):
    text = WORDING.replace("instrument: mood3", "instrument: who5")
    path = write(tmp_path, text)
    assert problems_of(local, path) == [
        f"{path}:1: instrument: this wording is for 'who5', but the instrument is 'mood3'"
    ]


def test_a_wording_file_is_validated_strictly(local, tmp_path):
    text = WORDING.replace("    items:\n", "    itmes:\n")
    path = write(tmp_path, text)
    assert problems_of(local, path) == [
        f"{path}:5: languages.en.itmes: unknown key 'itmes'; did you mean 'items'?"
    ]


def test_a_translation_adds_a_language_with_anchor_and_score_labels(tmp_path):
    definition = tmp_path / "mood3.yaml"
    definition.write_text(MINIMAL)
    text = """\
instrument: mood3
languages:
  fr:
    instructions: Répondez à chaque question.
    items:
      mood_1: Je me sens calme.
      mood_2: Je me sens joyeux.
      mood_3: Je me sens tendu.
    anchors:
      agree5: {1: Pas d'accord, 3: Neutre, 5: D'accord}
    scores: {total: Humeur}
"""
    instrument = load_instrument(definition, wording=write(tmp_path, text))
    assert instrument.languages == ("en", "de", "fr")
    view = localize(instrument, "fr-CA")
    assert view.instructions == "Répondez à chaque question."
    assert [item.text for item in view.items] == [
        "Je me sens calme.",
        "Je me sens joyeux.",
        "Je me sens tendu.",
    ]
    assert [(a.value, a.label) for a in view.items[0].scale.anchors] == [
        (1, "Pas d'accord"),
        (3, "Neutre"),
        (5, "D'accord"),
    ]
    assert view.score_labels == {"total": "Humeur", "percent": "Mood (percent)"}


def test_anchor_labels_must_be_points_of_the_scale(tmp_path):
    definition = tmp_path / "mood3.yaml"
    definition.write_text(MINIMAL)
    text = """\
instrument: mood3
languages:
  fr:
    items: {mood_1: a, mood_2: b, mood_3: c}
    anchors:
      agree5: {0: Zéro}
"""
    path = write(tmp_path, text)
    assert problems_of(definition, path) == [
        f"{path}:6: languages.fr.anchors.agree5.0: 0 is not a point of the scale "
        "(1 to 5 in steps of 1)"
    ]
