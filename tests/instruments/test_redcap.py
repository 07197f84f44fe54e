"""REDCap data dictionaries: REDCap's own column layout and field syntax, and round trips."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from instruments.loader import load_instrument, parse_instrument
from instruments.redcap import (
    REDCAP_COLUMNS,
    RedcapExportError,
    RedcapImportError,
    export_redcap,
    import_redcap,
    instrument_yaml,
    read_redcap,
)
from instruments.schema import Instrument

LIBRARY = Path(__file__).resolve().parents[2] / "instruments" / "library"


def rows_of(csv_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text)))


def dictionary(*rows: str) -> str:
    """A data dictionary as REDCap writes it: its quoted 18-column header, then `rows`."""
    header = ",".join(f'"{column}"' for column in REDCAP_COLUMNS)
    return "\n".join([header, *rows]) + "\n"


def field(
    name,
    form,
    kind,
    label,
    choices="",
    validation="",
    low="",
    high="",
    annotation="",
    section="",
    branching="",
):
    cells = [name, form, section, kind, label, choices, "", validation, low, high]
    cells += ["", branching, "", "", "", "", "", annotation]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().removesuffix("\n")


def every_field_type() -> Instrument:
    """An instrument using every scale shape the export distinguishes, in two languages."""
    agree = ["Strongly disagree", "Disagree", "Neither", "Agree", "Strongly agree"]
    return Instrument.model_validate(
        {
            "id": "mixed",
            "name": "Mixed formats",
            "short_name": "MIX",
            "version": "1",
            "citation": "Written for tests.",
            "licence": {"name": "CC0", "commercial_use": "allowed"},
            "wording": {"status": "shipped", "source": "tests"},
            "instructions": {"en": "Answer every question.", "de": "Bitte alle beantworten."},
            "languages": ["en", "de"],
            "response_scales": {
                "agree5": {
                    "min": 1,
                    "max": 5,
                    "anchors": [
                        {"value": i + 1, "label": {"en": t, "de": f"de {t}"}}
                        for i, t in enumerate(agree)
                    ],
                },
                "rating10": {
                    "min": 0,
                    "max": 10,
                    "anchors": [
                        {"value": 0, "label": {"en": "Not at all", "de": "Gar nicht"}},
                        {"value": 10, "label": {"en": "Completely", "de": "Völlig"}},
                    ],
                },
                "vas100": {
                    "min": 0,
                    "max": 100,
                    "anchors": [
                        {"value": 0, "label": {"en": "Worst", "de": "Schlechteste"}},
                        {"value": 50, "label": {"en": "Neutral", "de": "Neutral"}},
                        {"value": 100, "label": {"en": "Best", "de": "Beste"}},
                    ],
                },
                "yes_no": {
                    "min": 0,
                    "max": 1,
                    "anchors": [
                        {"value": 1, "label": {"en": "Yes", "de": "Ja"}},
                        {"value": 0, "label": {"en": "No", "de": "Nein"}},
                    ],
                },
                "ends7": {
                    "min": 1,
                    "max": 7,
                    "anchors": [
                        {"value": 1, "label": {"en": "Never", "de": "Nie"}},
                        {"value": 7, "label": {"en": "Always", "de": "Immer"}},
                    ],
                },
                "long15": {
                    "min": 1,
                    "max": 15,
                    "anchors": [
                        {"value": v, "label": {"en": f"Level {v}", "de": f"Stufe {v}"}}
                        for v in range(1, 16)
                    ],
                },
            },
            "items": [
                {
                    "id": "ag1",
                    "text": {"en": "I agree.", "de": "Ich stimme zu."},
                    "scale": "agree5",
                },
                {
                    "id": "ag2",
                    "text": {"en": "I disagree.", "de": "Ich widerspreche."},
                    "scale": "agree5",
                    "reverse": True,
                },
                {"id": "ag3", "text": {"en": "Maybe.", "de": "Vielleicht."}, "scale": "agree5"},
                {"id": "life", "text": {"en": "Life?", "de": "Leben?"}, "scale": "rating10"},
                {"id": "health", "text": {"en": "Health?", "de": "Gesundheit?"}, "scale": "vas100"},
                {"id": "smoker", "text": {"en": "Smoker?", "de": "Raucher?"}, "scale": "yes_no"},
                {"id": "often", "text": {"en": "How often?", "de": "Wie oft?"}, "scale": "ends7"},
                {"id": "level", "text": {"en": "Level?", "de": "Stufe?"}, "scale": "long15"},
            ],
            "scores": [
                {
                    "id": "agreement",
                    "label": {"en": "Agreement", "de": "Zustimmung"},
                    "items": ["ag1", "ag2", "ag3"],
                    "method": "mean",
                    "min_answered": 2,
                },
                {
                    "id": "sum3",
                    "label": {"en": "Sum", "de": "Summe"},
                    "kind": "total",
                    "items": ["ag1", "ag2", "ag3"],
                    "method": "sum",
                    "min_answered": 2,
                    "prorate": True,
                },
            ],
            "sms": {"suitable": False},
        }
    )


# --- the dictionary format -------------------------------------------------------------------


def test_header_is_redcaps_eighteen_columns_in_order():
    assert len(REDCAP_COLUMNS) == 18
    assert REDCAP_COLUMNS[0] == "Variable / Field Name"
    assert REDCAP_COLUMNS[4] == "Field Label"
    assert REDCAP_COLUMNS[5] == "Choices, Calculations, OR Slider Labels"
    assert REDCAP_COLUMNS[7] == "Text Validation Type OR Show Slider Number"
    assert REDCAP_COLUMNS[11] == "Branching Logic (Show field only if...)"
    assert REDCAP_COLUMNS[-1] == "Field Annotation"
    first_line = export_redcap(load_instrument(LIBRARY / "who5.yaml")).splitlines()[0]
    assert next(csv.reader([first_line])) == list(REDCAP_COLUMNS)


def test_who5_exports_as_radio_fields_with_its_published_anchors():
    rows = rows_of(export_redcap(load_instrument(LIBRARY / "who5.yaml")))
    assert [r["Variable / Field Name"] for r in rows] == [
        "record_id",
        "who5_instructions",
        "who5_reference_period",
        "who5_1",
        "who5_2",
        "who5_3",
        "who5_4",
        "who5_5",
    ]
    assert {r["Form Name"] for r in rows} == {"who5"}
    item = rows[3]
    assert item["Field Type"] == "radio"
    assert item["Field Label"] == "I have felt cheerful and in good spirits."
    assert item["Choices, Calculations, OR Slider Labels"] == (
        "5, All of the time | 4, Most of the time | 3, More than half of the time | "
        "2, Less than half of the time | 1, Some of the time | 0, At no time"
    )
    assert rows[1]["Field Type"] == "descriptive"


def test_each_scale_shape_gets_the_redcap_field_type_a_redcap_user_would_choose():
    rows = {r["Variable / Field Name"]: r for r in rows_of(export_redcap(every_field_type()))}
    choices = "Choices, Calculations, OR Slider Labels"
    assert rows["ag1"]["Field Type"] == "radio"
    assert rows["ag1"][choices] == (
        "1, Strongly disagree | 2, Disagree | 3, Neither | 4, Agree | 5, Strongly agree"
    )
    assert rows["life"]["Field Type"] == "slider"
    assert rows["life"][choices] == "Not at all |  | Completely"
    assert rows["life"]["Text Validation Type OR Show Slider Number"] == "number"
    assert (rows["life"]["Text Validation Min"], rows["life"]["Text Validation Max"]) == ("0", "10")
    assert rows["health"]["Field Type"] == "slider"
    assert rows["health"][choices] == "Worst | Neutral | Best"
    assert rows["smoker"]["Field Type"] == "yesno"
    assert rows["smoker"][choices] == ""
    # A 1-7 scale labelled only at its ends is not a slider: every point is listed.
    assert rows["often"]["Field Type"] == "radio"
    assert rows["often"][choices] == "1, Never | 2, 2 | 3, 3 | 4, 4 | 5, 5 | 6, 6 | 7, Always"
    assert rows["level"]["Field Type"] == "dropdown"


def test_annotations_carry_scale_reverse_key_and_subscales():
    rows = {r["Variable / Field Name"]: r for r in rows_of(export_redcap(every_field_type()))}
    assert rows["ag2"]["Field Annotation"] == (
        "flourish: scale=agree5; reverse; score=agreement:mean:min=2; "
        "score=sum3:sum:min=2:prorate:kind=total"
    )
    assert rows["life"]["Field Annotation"] == "flourish: scale=rating10"


def test_export_words_the_dictionary_in_the_requested_language():
    rows = {r["Variable / Field Name"]: r for r in rows_of(export_redcap(every_field_type(), "de"))}
    assert rows["ag1"]["Field Label"] == "Ich stimme zu."
    assert rows["life"]["Choices, Calculations, OR Slider Labels"] == "Gar nicht |  | Völlig"
    # yesno is only for English Yes/No labels: REDCap words yesno fields itself.
    assert rows["smoker"]["Choices, Calculations, OR Slider Labels"] == "1, Ja | 0, Nein"
    # A language the instrument lacks falls back to its first language, as for participants.
    fallback = {
        r["Variable / Field Name"]: r for r in rows_of(export_redcap(every_field_type(), "fr"))
    }
    assert fallback["ag1"]["Field Label"] == "I agree."


def test_export_without_wording_names_the_items_that_lack_text():
    local = every_field_type().model_copy(
        update={"items": tuple(i.model_copy(update={"text": {}}) for i in every_field_type().items)}
    )
    with pytest.raises(RedcapExportError, match="for item\\(s\\) ag1, ag2, ag3"):
        export_redcap(local)


def test_export_can_leave_out_the_record_id_field():
    rows = rows_of(export_redcap(every_field_type(), record_id=False))
    assert rows[0]["Variable / Field Name"] == "mixed_instructions"


# --- round trips -----------------------------------------------------------------------------


def normalised_scale(instrument: Instrument, scale_id: str, language: str):
    scale = instrument.response_scales[scale_id]
    anchors = sorted((a.value, a.label[language]) for a in scale.anchors)
    return scale.min, scale.max, scale.step, anchors


@pytest.mark.parametrize("language", ["en", "de"])
def test_import_of_an_export_preserves_items_scales_labels_and_reverse_keys(language):
    original = every_field_type()
    (imported,) = import_redcap(export_redcap(original, language), language=language)
    assert imported.id == original.id
    assert imported.item_ids == original.item_ids
    for before, after in zip(original.items, imported.items, strict=True):
        assert after.text == {language: before.text[language]}
        assert after.scale == before.scale
        assert after.reverse == before.reverse
    assert set(imported.response_scales) == set(original.response_scales)
    for scale_id in original.response_scales:
        expected = normalised_scale(original, scale_id, language)
        if scale_id == "yes_no" and language == "en":
            expected = (0, 1, 1, [(0, "No"), (1, "Yes")])
        assert normalised_scale(imported, scale_id, language) == expected
    assert imported.instructions == {language: original.instructions[language]}
    agreement = imported.score("agreement")
    assert (agreement.items, agreement.method, agreement.min_answered) == (
        ("ag1", "ag2", "ag3"),
        "mean",
        2,
    )
    sum3 = imported.score("sum3")
    assert (sum3.kind, sum3.prorate, sum3.min_answered) == ("total", True, 2)


@pytest.mark.parametrize("language", ["en", "de"])
def test_export_import_export_is_stable(language):
    exported = export_redcap(every_field_type(), language)
    (imported,) = import_redcap(exported, language=language)
    assert export_redcap(imported, language) == exported


def shipped_library_files() -> list[Path]:
    return sorted(
        path for path in LIBRARY.glob("*.yaml") if load_instrument(path).wording.status == "shipped"
    )


@pytest.mark.parametrize("path", shipped_library_files(), ids=lambda p: p.stem)
def test_every_shipped_library_instrument_round_trips(path):
    instrument = load_instrument(path)
    exported = export_redcap(instrument)
    (imported,) = import_redcap(exported)
    assert export_redcap(imported) == exported
    assert imported.item_ids == instrument.item_ids
    assert [i.reverse for i in imported.items] == [i.reverse for i in instrument.items]
    # A score's items come back in administration order; their order does not change a score.
    item_scores = {s.id: (s.method, set(s.items)) for s in instrument.scores if s.items}
    assert {s.id: (s.method, set(s.items)) for s in imported.scores} == item_scores


def test_an_imported_instrument_written_as_yaml_loads_back_unchanged():
    (imported,) = import_redcap(export_redcap(every_field_type()))
    assert parse_instrument(instrument_yaml(imported), "mixed.yaml") == imported
    assert parse_instrument(instrument_yaml(every_field_type()), "m.yaml") == every_field_type()


# --- importing dictionaries written in REDCap ------------------------------------------------


def hand_made_dictionary() -> str:
    """Two forms as a REDCap user builds them: no Flourish annotations, loose spacing."""
    return dictionary(
        field("record_id", "mood", "text", "Record ID"),
        field("m1", "mood", "radio", "Felt down?", "1,Never|2 ,  Rarely | 3, Often "),
        field("m2", "mood", "dropdown", "Felt tired?", "1, Never | 2, Rarely | 3, Often"),
        field("m3", "mood", "slider", "Mood today", "Awful | | Great"),
        field("m4", "mood", "text", "Hours slept", validation="integer", low="0", high="24"),
        field("sleep_ok", "sleep", "yesno", "Slept well?"),
        field("sleep_q", "sleep", "slider", "Sleep quality", "Bad|Good", "number", "1", "10"),
    )


def test_a_hand_made_dictionary_imports_one_instrument_per_form():
    mood, sleep = import_redcap(hand_made_dictionary())
    assert (mood.id, sleep.id) == ("mood", "sleep")
    assert mood.item_ids == ("m1", "m2", "m3", "m4")
    m1 = mood.scale_of(mood.item("m1"))
    assert (m1.min, m1.max) == (1, 3)
    assert [(a.value, a.label["en"]) for a in m1.anchors] == [
        (1, "Never"),
        (2, "Rarely"),
        (3, "Often"),
    ]
    # Same choices in a dropdown: the same response scale.
    assert mood.item("m1").scale == mood.item("m2").scale
    slider = mood.scale_of(mood.item("m3"))
    assert (slider.min, slider.max, slider.step) == (0, 100, 1)  # REDCap's default slider range
    assert [(a.value, a.label["en"]) for a in slider.anchors] == [(0, "Awful"), (100, "Great")]
    hours = mood.scale_of(mood.item("m4"))
    assert (hours.min, hours.max, hours.anchors) == (0, 24, ())
    yes_no = sleep.scale_of(sleep.item("sleep_ok"))
    assert [(a.value, a.label["en"]) for a in yes_no.anchors] == [(1, "Yes"), (0, "No")]
    quality = sleep.scale_of(sleep.item("sleep_q"))
    assert [(a.value, a.label["en"]) for a in quality.anchors] == [(1, "Bad"), (10, "Good")]


def test_without_annotations_an_imported_form_gets_one_total_and_says_why():
    mood, _ = import_redcap(hand_made_dictionary())
    (total,) = mood.scores
    assert (total.id, total.kind, total.method) == ("total", "total", "sum")
    assert total.items == ("m1", "m2", "m3", "m4")
    assert total.min_answered is None  # complete cases, the library's default
    assert "no subscales" in total.interpretation
    assert mood.licence.commercial_use == "unknown"


def test_one_form_can_be_chosen_and_renamed():
    (sleep,) = import_redcap(hand_made_dictionary(), form="sleep", instrument_id="sleep_check")
    assert sleep.id == "sleep_check"
    with pytest.raises(RedcapImportError, match="no form 'diet'"):
        import_redcap(hand_made_dictionary(), form="diet")
    with pytest.raises(RedcapImportError, match="2 forms"):
        import_redcap(hand_made_dictionary(), instrument_id="both")


def test_unsupported_fields_are_reported_with_their_row_numbers():
    text = dictionary(
        field("record_id", "diary", "text", "Record ID"),
        field("d1", "diary", "radio", "Okay?", "0, No | 1, Yes"),
        field("d_total", "diary", "calc", "Total", "[d1]*2"),
        field("d_which", "diary", "checkbox", "Which?", "1, A | 2, B"),
        field("d_intro", "diary", "descriptive", "Welcome"),
        field("d_why", "diary", "notes", "Why?"),
        field("d_name", "diary", "text", "Name"),
    )
    with pytest.raises(RedcapImportError) as raised:
        import_redcap(text)
    assert raised.value.problems == [
        "row 4 (field d_total): field type 'calc' is not supported: a calculated field, not an "
        "answer",
        "row 5 (field d_which): field type 'checkbox' is not supported: several answers per "
        "field; Flourish items take one answer",
        "row 6 (field d_intro): field type 'descriptive' is not supported: display text only",
        "row 7 (field d_why): field type 'notes' is not supported: free text; Flourish items are "
        "scored on a response scale",
        "row 8 (field d_name): field type 'text' is not supported: free text (only text with "
        "integer validation and a min and max is a scale)",
    ]
    result = read_redcap(text, skip_unsupported=True)
    (diary,) = result.instruments
    assert diary.item_ids == ("d1",)
    assert len(result.notes) == 5
    assert result.notes[0].startswith("skipped row 4 (field d_total)")


def test_choice_codes_must_be_numbers_in_equal_steps():
    text = dictionary(
        field("q1", "f", "radio", "A?", "1, Yes | 2, No | 9, Don't know"),
        field("q2", "f", "radio", "B?", "a, Yes | b, No"),
        field("q3", "f", "radio", "C?", "1 Yes | 2 No"),
    )
    with pytest.raises(RedcapImportError) as raised:
        import_redcap(text)
    assert raised.value.problems == [
        "row 2 (field q1): choice codes 1, 2, 9 are not evenly spaced; a Flourish response "
        "scale has every value from min to max in equal steps",
        "row 3 (field q2): choice code 'a' is not a number",
        "row 4 (field q3): choice '1 Yes' is not 'code, label'",
    ]


def test_a_header_that_is_not_redcaps_is_refused():
    text = export_redcap(every_field_type()).replace("Field Label", "Label", 1)
    with pytest.raises(RedcapImportError, match="column 5 is 'Label', expected 'Field Label'"):
        import_redcap(text)


def test_one_scale_name_with_two_definitions_is_an_error():
    text = dictionary(
        field("q1", "f", "radio", "A?", "1, No | 2, Yes", annotation="flourish: scale=yn"),
        field("q2", "f", "radio", "B?", "0, No | 1, Yes", annotation="flourish: scale=yn"),
    )
    with pytest.raises(RedcapImportError, match=r"row 3 .*scale 'yn' differs .* row 2"):
        import_redcap(text)


def test_branching_logic_and_section_headers_are_noted_not_silently_dropped():
    row = field(
        "q1", "f", "radio", "A?", "1, No | 2, Yes", section="Part one", branching="[q0] = '1'"
    )
    result = read_redcap(dictionary(row))
    assert result.notes == (
        "row 2 (field q1): branching logic ignored: [q0] = '1'",
        "row 2 (field q1): section header ignored: Part one",
    )


def test_a_byte_order_mark_and_multi_line_labels_are_read():
    text = "\ufeff" + dictionary(field("q1", "f", "radio", "Line one\nline two", "1, No | 2, Yes"))
    (instrument,) = import_redcap(text)
    assert instrument.item("q1").text == {"en": "Line one\nline two"}
