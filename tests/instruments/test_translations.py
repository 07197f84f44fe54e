"""A participant sees their language: requested -> base language -> the instrument's first."""

from __future__ import annotations

import pytest

from instruments.loader import parse_instrument
from instruments.translations import (
    MissingWordingError,
    fallback_chain,
    item_text,
    localize,
    missing_wording,
)

from .definitions import LOCAL, MINIMAL, edit


@pytest.fixture
def mood():
    return parse_instrument(MINIMAL, "mood3.yaml")


def test_the_fallback_chain_strips_subtags_then_uses_the_first_language(mood):
    assert fallback_chain(mood, "de-CH") == ("de-CH", "de", "en")
    assert fallback_chain(mood, "pt-BR") == ("pt-BR", "pt", "en")
    assert fallback_chain(mood, "zh-Hant-TW") == ("zh-Hant-TW", "zh-Hant", "zh", "en")
    assert fallback_chain(mood, "en") == ("en",)


def test_item_text_in_the_requested_language(mood):
    assert item_text(mood, "mood_1", "de") == "Ich bin ruhig."
    assert item_text(mood, "mood_1", "en") == "I feel calm."


def test_a_regional_variant_falls_back_to_its_base_language(mood):
    assert item_text(mood, "mood_2", "de-AT") == "Ich bin fröhlich."


def test_language_tags_compare_case_insensitively(mood):
    assert item_text(mood, "mood_2", "DE") == "Ich bin fröhlich."


def test_an_unknown_language_falls_back_to_the_first_language(mood):
    view = localize(mood, "pt-BR")
    assert [item.text for item in view.items] == [
        "I feel calm.",
        "I feel cheerful.",
        "I feel tense.",
    ]
    assert view.fell_back == ("mood_1", "mood_2", "mood_3")
    assert view.items[0].language == "en"


def test_localize_carries_anchors_score_labels_and_keys(mood):
    view = localize(mood, "de")
    assert view.fell_back == ()
    assert [(a.value, a.label) for a in view.items[2].scale.anchors] == [
        (1, "Stimme nicht zu"),
        (5, "Stimme zu"),
    ]
    assert view.items[2].reverse is True
    assert view.score_labels == {"total": "Stimmung", "percent": "Stimmung (Prozent)"}


def test_fallback_is_per_text(mood):
    text = edit(MINIMAL, "label: {en: Mood, de: Stimmung}", "label: {en: Mood}")
    view = localize(parse_instrument(text, "mood3.yaml"), "de")
    assert view.score_labels["total"] == "Mood"
    assert view.items[0].text == "Ich bin ruhig."


def test_items_without_text_in_any_fallback_are_listed_exactly():
    local = parse_instrument(LOCAL, "mood3.yaml")
    assert missing_wording(local, "de-CH") == ("mood_1", "mood_3")
    with pytest.raises(MissingWordingError) as caught:
        item_text(local, "mood_3", "en")
    assert caught.value.missing == ("mood_3",)
    assert "mood3.wording.yaml in the study's instruments directory" in str(caught.value)
