"""A protocol's instruments resolve against the library, study files and wording files."""

from __future__ import annotations

import pytest

from instruments.catalogue import Library
from study.protocol import ProtocolError, parse_protocol
from tests.instruments.definitions import LOCAL
from tests.instruments.definitions import MINIMAL as MOOD3

from .conftest import MINIMAL, SOURCE, edit, line_of, only


def test_declared_library_instruments_are_resolved(parse):
    protocol = parse(MINIMAL)
    assert protocol.instrument("who5").score("raw").method == "sum"
    assert set(protocol.instruments) == {"who5", "swls"}


def test_an_unknown_instrument_is_reported_with_its_line_and_a_suggestion(problems):
    text = edit(
        MINIMAL, "instruments: [who5, swls]\nschedule", "instruments: [who5, swsl]\nschedule"
    )
    text = edit(text, "    instruments: [who5, swls]\n", "    instruments: [who5, swsl]\n")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'instruments: [who5, swsl]')}: instruments[1]: "
        "unknown instrument 'swsl'; did you mean 'swls'?",
    )


def test_each_unknown_instrument_in_a_block_list_has_its_own_line(problems):
    text = edit(
        MINIMAL,
        "instruments: [who5, swls]\nschedule",
        "instruments:\n  - who5\n  - swls\n  - sf36\nschedule",
    )
    reported = problems(text)
    assert (
        f"{SOURCE}:{line_of(text, '- sf36')}: instruments[2]: unknown instrument 'sf36'" in reported
    )


def test_an_excluded_instrument_says_why(protocol_dir):
    text = edit(
        MINIMAL, "instruments: [who5, swls]\nschedule", "instruments: [who5, swls, uls8]\nschedule"
    )
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(text, SOURCE, protocol_dir, library=Library.load(commercial_only=True))
    (problem,) = caught.value.problems
    assert problem.field == "instruments[2]"
    assert problem.message.startswith("instrument 'uls8' is excluded because this deployment")


def test_a_study_instrument_file_is_loaded_and_hashed(protocol_dir, parse):
    (protocol_dir / "mood3.yaml").write_text(MOOD3)
    text = edit(
        MINIMAL,
        "instruments: [who5, swls]\nschedule",
        "instruments: [who5, swls, {id: mood3, file: mood3.yaml}]\nschedule",
    )
    protocol = parse(text)
    assert protocol.instrument("mood3").item_ids == ("mood_1", "mood_2", "mood_3")
    assert "mood3.yaml" in protocol.referenced_files


def test_problems_inside_a_study_instrument_file_name_that_file(protocol_dir, problems):
    (protocol_dir / "mood3.yaml").write_text(MOOD3.replace("citation:", "citaton:"))
    text = edit(
        MINIMAL,
        "instruments: [who5, swls]\nschedule",
        "instruments: [who5, swls, {id: mood3, file: mood3.yaml}]\nschedule",
    )
    reported = problems(text)
    assert "mood3.yaml:5: citaton: unknown key 'citaton'; did you mean 'citation'?" in reported


def test_a_study_file_must_define_the_declared_id(protocol_dir, problems):
    (protocol_dir / "mood3.yaml").write_text(MOOD3)
    text = edit(
        MINIMAL,
        "instruments: [who5, swls]\nschedule",
        "instruments: [who5, swls, {id: mood, file: mood3.yaml}]\nschedule",
    )
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'file: mood3.yaml')}: instruments[2].id: "
        "'mood3.yaml' defines instrument 'mood3', not 'mood'",
    )


def test_a_wording_file_completes_local_wording(protocol_dir, parse, problems):
    (protocol_dir / "mood3.yaml").write_text(LOCAL)
    (protocol_dir / "mood3.wording.yaml").write_text(
        "instrument: mood3\nlanguages:\n  en:\n    items: {mood_1: Calm., mood_3: Tense.}\n"
    )
    text = edit(
        MINIMAL,
        "instruments: [who5, swls]\nschedule",
        "instruments: [who5, swls, {id: mood3, file: mood3.yaml, wording: mood3.wording.yaml}]"
        "\nschedule",
    )
    assert parse(text).instrument("mood3").item("mood_3").text == {"en": "Tense."}
    (protocol_dir / "mood3.wording.yaml").write_text(
        "instrument: mood3\nlanguages:\n  en:\n    items: {mood_1: Calm.}\n"
    )
    assert problems(text) == [
        "mood3.wording.yaml:4: languages.en.items: no text in en for item(s) mood_3"
    ]


def test_stratifying_on_a_score_needs_that_score(problems):
    text = edit(
        MINIMAL,
        "    - name: age_band\n      question: age\n      cut_points: [35]\n",
        "    - name: wellbeing\n      instrument: who5\n      score: rwa\n      cut_points: [13]\n",
    )
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'score: rwa')}: allocation.strata[0].score: instrument 'who5' "
        "has no score 'rwa'; did you mean 'raw'? (scores: raw, percentage)",
    )
