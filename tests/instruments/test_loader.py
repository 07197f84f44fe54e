"""Instrument definitions load strictly: every mistake as `FILE:LINE: field: message`, at once."""

from __future__ import annotations

import pytest

from instruments.loader import InstrumentError, load_instrument, parse_instrument

from .definitions import LOCAL, MINIMAL, SOURCE, edit, line_of


def problems(text: str) -> list[str]:
    with pytest.raises(InstrumentError) as caught:
        parse_instrument(text, SOURCE)
    return [str(problem) for problem in caught.value.problems]


def only(text: str) -> str:
    reported = problems(text)
    assert len(reported) == 1, reported
    return reported[0]


def test_the_minimal_definition_is_valid():
    instrument = parse_instrument(MINIMAL, SOURCE)
    assert instrument.item_ids == ("mood_1", "mood_2", "mood_3")
    assert instrument.item("mood_3").reverse is True
    assert instrument.score("percent").transform.multiply == 6.25


# --- schema errors ------------------------------------------------------------------------------


def test_a_misspelt_key_is_located_and_the_allowed_one_suggested():
    text = edit(MINIMAL, "reverse: true", "reversed: true")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'reversed')}: items[2].reversed: "
        "unknown key 'reversed'; did you mean 'reverse'?"
    )


def test_a_misspelt_top_level_key_is_suggested():
    text = edit(MINIMAL, "citation:", "citaton:")
    reported = problems(text)
    assert f"{SOURCE}:5: citaton: unknown key 'citaton'; did you mean 'citation'?" in reported
    assert f"{SOURCE}:1: missing required key 'citation'" in reported


def test_an_unknown_key_without_a_close_match_lists_the_allowed_keys():
    text = edit(MINIMAL, "sms:\n  suitable: true\n", "sms:\n  suitable: true\n  colour: red\n")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'colour')}: sms.colour: "
        "unknown key 'colour' (allowed here: suitable, notes)"
    )


def test_a_wrong_choice_names_the_options_and_the_closest():
    text = edit(MINIMAL, "commercial_use: allowed", "commercial_use: allowd")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'allowd')}: licence.commercial_use: 'allowd' is not one of "
        "allowed, needs_permission, not_allowed, unknown; did you mean 'allowed'?"
    )


def test_a_missing_nested_key_is_reported_at_its_parent():
    text = edit(MINIMAL, "    kind: derived\n", "    kind: derived\n    method: mean\n")
    text = edit(text, "  - id: percent\n", "  - percent_typo: 1\n")
    reported = problems(text)
    assert f"{SOURCE}:{line_of(text, 'percent_typo')}: scores[1].id: missing required key 'id'" in (
        reported
    )


def test_a_value_of_the_wrong_type_is_located():
    text = edit(MINIMAL, "    max: 5\n", "    max: five\n")
    reported = problems(text)
    assert reported[0].startswith(
        f"{SOURCE}:{line_of(text, 'max: five')}: response_scales.agree5.max:"
    )
    assert "'five'" in reported[0]


def test_yaml_syntax_errors_and_duplicate_keys_name_the_line():
    broken = edit(MINIMAL, "languages: [en, de]", "languages: [en, de")
    assert only(broken).startswith(f"{SOURCE}:")
    assert "YAML syntax error" in only(broken)
    twice = edit(MINIMAL, 'version: "1"\n', 'version: "1"\nversion: "2"\n')
    assert only(twice) == f"{SOURCE}:5: version: duplicate key 'version' (first given at line 4)"


def test_the_definition_must_be_a_mapping():
    assert problems("- a\n- b\n") == [
        f"{SOURCE}:1: the instrument definition is a list, not a mapping; "
        "it must be a mapping of keys"
    ]


def test_an_unreadable_file_is_a_problem_without_a_line(tmp_path):
    missing = tmp_path / "nothing.yaml"
    with pytest.raises(InstrumentError) as caught:
        load_instrument(missing)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"


def test_load_instrument_names_the_file(tmp_path):
    path = tmp_path / "mood3.yaml"
    path.write_text(
        edit(
            MINIMAL,
            "scale: agree5, text: {en: I feel calm.",
            "scale: agree, text: {en: I feel calm.",
        )
    )
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line_of(path.read_text(), 'scale: agree,')}: items[0].scale: there is no "
        "response scale 'agree'; did you mean 'agree5'? (response_scales: agree5)"
    ]


# --- cross-field rules --------------------------------------------------------------------------


def test_item_ids_are_unique():
    text = edit(MINIMAL, "id: mood_2,", "id: mood_1,")
    reported = problems(text)
    assert (
        f"{SOURCE}:{line_of(text, 'I feel cheerful')}: items[1].id: "
        "'mood_1' is given twice (also at items[0].id)"
    ) in reported


def test_scores_refer_to_existing_items_scores_and_transforms():
    text = edit(MINIMAL, "items: [mood_1, mood_2, mood_3]", "items: [mood_1, mood_2, mood_4]")
    text = edit(text, "transform: {of: total,", "transform: {of: totl,")
    assert problems(text) == [
        f"{SOURCE}:{line_of(text, 'mood_4')}: scores[0].items[2]: "
        "there is no item 'mood_4'; did you mean 'mood_3'?",
        f"{SOURCE}:{line_of(text, 'totl')}: scores[1].transform.of: "
        "there is no score 'totl'; did you mean 'total'?",
    ]


def test_a_score_gives_exactly_one_of_items_scores_or_transform():
    text = edit(
        MINIMAL,
        "    transform: {of: total, multiply: 6.25, add: -18.75}\n",
        "    transform: {of: total, multiply: 6.25, add: -18.75}\n    items: [mood_1]\n",
    )
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'id: percent')}: scores[1]: "
        "give exactly one of items, scores or transform (got items and transform)"
    )


def test_scores_may_not_depend_on_each_other_in_a_cycle():
    text = edit(
        MINIMAL,
        "    items: [mood_1, mood_2, mood_3]\n    method: sum\n",
        "    scores: [percent]\n    method: sum\n",
    )
    reported = problems(text)
    assert any("scores depend on each other: total -> percent -> total" in p for p in reported), (
        reported
    )


def test_min_answered_cannot_exceed_the_items():
    text = edit(MINIMAL, "    method: sum\n", "    method: sum\n    min_answered: 4\n")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'min_answered')}: scores[0].min_answered: "
        "min_answered 4 is more than the 3 items of this score"
    )


def test_a_partial_sum_must_be_prorated():
    text = edit(MINIMAL, "    method: sum\n", "    method: sum\n    min_answered: 2\n")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'min_answered')}: scores[0].min_answered: a sum over fewer "
        "than all 3 items is not comparable between people; set prorate: true (flagged in the "
        "output) or use method: mean"
    )
    prorated = edit(text, "    min_answered: 2\n", "    min_answered: 2\n    prorate: true\n")
    assert parse_instrument(prorated, SOURCE).score("total").prorate is True


def test_prorate_applies_only_to_partial_sums():
    text = edit(MINIMAL, "    method: sum\n", "    method: mean\n    prorate: true\n")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'prorate')}: scores[0].prorate: "
        "prorate applies only to method: sum (a mean needs none)"
    )


def test_anchors_lie_on_their_scale():
    text = edit(MINIMAL, "{value: 5, label:", "{value: 6, label:")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'value: 6')}: response_scales.agree5.anchors[1].value: "
        "6 is not a point of the scale (1 to 5 in steps of 1)"
    )


def test_shipped_wording_needs_every_item_in_every_language():
    text = edit(
        MINIMAL,
        "text: {en: I feel cheerful., de: Ich bin fröhlich.}",
        "text: {en: I feel cheerful.}",
    )
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'I feel cheerful')}: items[1].text: no text in de (the "
        "wording is shipped, so every item needs text in every language; use wording.status: "
        "local to leave it to the study)"
    )


def test_local_wording_may_leave_items_without_text():
    instrument = parse_instrument(LOCAL, SOURCE)
    assert instrument.item("mood_1").text == {}
    assert instrument.item("mood_2").text["en"] == "I feel cheerful."


def test_text_only_in_listed_languages():
    text = edit(
        MINIMAL, "label: {en: Mood, de: Stimmung}", "label: {en: Mood, de: Stimmung, fr: Humeur}"
    )
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'fr: Humeur')}: scores[0].label.fr: "
        "'fr' is not one of the instrument's languages (en, de)"
    )


def test_sms_suitability_needs_one_message_answers():
    text = edit(MINIMAL, "    max: 5\n", "    max: 100\n")
    assert only(text) == (
        f"{SOURCE}:{line_of(text, 'suitable: true')}: sms.suitable: response scale 'agree5' "
        "has 100 points; an SMS answer must be one of at most 11, so the instrument is not "
        "SMS-suitable"
    )
    assert parse_instrument(edit(text, "suitable: true", "suitable: false"), SOURCE)


def test_every_problem_is_reported_in_one_pass():
    text = MINIMAL
    text = edit(text, "citation:", "citaton:")
    text = edit(text, "{value: 5, label:", "{value: 7, label:")
    text = edit(text, "scale: agree5, reverse: true", "scale: agree6, reverse: true")
    text = edit(text, "transform: {of: total,", "transform: {of: totl,")
    text = edit(text, "  suitable: true", "  suitable: maybe")
    reported = problems(text)
    assert reported[0] == f"{SOURCE}:1: missing required key 'citation'"
    fields = [problem.split(": ")[1] for problem in reported[1:]]
    assert fields == [
        "citaton",
        "response_scales.agree5.anchors[1].value",
        "items[2].scale",
        "scores[1].transform.of",
        "sms.suitable",
    ]
