"""`flourish instruments score ID --responses FILE.csv [--out FILE.csv]`.

Expected scores are reference values (WHO-5 worked example: 3,2,4,1,3 -> raw 13 -> 52) or
worked out by hand in the test, never read back from the code.
"""

from __future__ import annotations

import csv
import io
import textwrap

import pytest

WHO5_CSV = textwrap.dedent(
    """\
    respondent,wave,who5_1,who5_2,who5_3,who5_4,who5_5
    007,1,3,2,4,1,3
    008,1,5,5,5,5,5
    009,2,3,2,,1,3
    """
)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def who5_csv(tmp_path):
    path = tmp_path / "who5.csv"
    path.write_text(WHO5_CSV)
    return path


def test_scores_a_csv_to_standard_output_and_carries_other_columns_unchanged(flourish, who5_csv):
    result = flourish("instruments", "score", "who5", "--responses", str(who5_csv))
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [
        {"respondent": "007", "wave": "1", "who5_1": "3", "who5_2": "2", "who5_3": "4",
         "who5_4": "1", "who5_5": "3", "raw": "13", "percentage": "52"},
        {"respondent": "008", "wave": "1", "who5_1": "5", "who5_2": "5", "who5_3": "5",
         "who5_4": "5", "who5_5": "5", "raw": "25", "percentage": "100"},
        {"respondent": "009", "wave": "2", "who5_1": "3", "who5_2": "2", "who5_3": "",
         "who5_4": "1", "who5_5": "3", "raw": "", "percentage": ""},
    ]  # fmt: skip
    assert result.stderr.splitlines() == [
        "WHO-5: 3 respondents; scores: 4 complete, 2 missing, "
        "0 prorated or from fewer items (flagged)",
        "  raw (WHO-5 raw score): 1 missing, 0 flagged",
        "  percentage (WHO-5 percentage score): 1 missing, 0 flagged",
    ]


def test_out_writes_the_scored_file_and_nothing_to_standard_output(flourish, who5_csv, tmp_path):
    out = tmp_path / "scored.csv"
    result = flourish(
        "instruments", "score", "who5", "--responses", str(who5_csv), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    scored = rows(out.read_text())
    assert [(row["respondent"], row["raw"], row["percentage"]) for row in scored] == [
        ("007", "13", "52"),
        ("008", "25", "100"),
        ("009", "", ""),
    ]


def test_every_answer_off_the_scale_is_reported_with_file_and_line_and_nothing_is_written(
    flourish, tmp_path
):
    path = tmp_path / "bad.csv"
    path.write_text(
        "respondent,who5_1,who5_2,who5_3,who5_4,who5_5\n"
        "p1,3,2,4,1,3\n"
        "p2,3,7,4,1,3\n"
        'p3,3,2,"4.5",often,3\n'
    )
    out = tmp_path / "scored.csv"
    result = flourish("instruments", "score", "who5", "--responses", str(path), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:3: who5_2: 7 is not an allowed answer; choose a whole number from 0 to 5",
        f"{path}:4: who5_3: 4.5 is not an allowed answer; choose a whole number from 0 to 5",
        f"{path}:4: who5_4: 'often' is not a number",
    ]
    assert not out.exists()
    assert result.stdout == ""


def test_a_missing_item_column_is_reported_on_the_header_line(flourish, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("who5_1,who5_2,who5_3,who5_5\n1,2,3,4\n")
    result = flourish("instruments", "score", "who5", "--responses", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"{path}:1: who5_4: the column is missing"]


def test_a_row_with_the_wrong_number_of_cells_is_reported(flourish, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("who5_1,who5_2,who5_3,who5_4,who5_5\n1,2,3,4,5\n1,2,3\n")
    result = flourish("instruments", "score", "who5", "--responses", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"{path}:3: the row has 3 cells; the header has 5"]


def test_missing_codes_are_treated_as_blank(flourish, tmp_path):
    path = tmp_path / "coded.csv"
    path.write_text("who5_1,who5_2,who5_3,who5_4,who5_5\n3,2,4,1,3\n3,-99,4,1,3\n")
    refused = flourish("instruments", "score", "who5", "--responses", str(path))
    assert refused.exit_code == 1
    assert "-99 is not an allowed answer" in refused.stderr
    result = flourish(
        "instruments", "score", "who5", "--responses", str(path), "--missing-code", "-99"
    )
    assert result.exit_code == 0, result.output
    assert [row["raw"] for row in rows(result.stdout)] == ["13", ""]


CUSTOM = textwrap.dedent(
    """\
    id: mood4
    name: Four-item mood check
    short_name: Mood-4
    version: "1"
    citation: Written for this test.
    licence: {name: CC0, commercial_use: allowed}
    wording: {status: shipped, source: this test}
    languages: [en, de]
    response_scales:
      agree4: {min: 1, max: 4}
    items:
      - {id: m1, text: {en: I felt cheerful., de: Ich war fröhlich.}, scale: agree4}
      - {id: m2, text: {en: I felt tense., de: Ich war angespannt.}, scale: agree4, reverse: true}
      - {id: m3, text: {en: I felt calm., de: Ich war ruhig.}, scale: agree4}
      - {id: m4, text: {en: I felt lively., de: Ich war lebhaft.}, scale: agree4}
    scores:
      - id: total
        label: {en: Mood total, de: Stimmung gesamt}
        kind: total
        items: [m1, m2, m3, m4]
        method: sum
        min_answered: 3
        prorate: true
    sms: {suitable: true}
    """
)


def test_a_custom_instrument_file_prorates_and_flags_as_it_allows(flourish, tmp_path):
    definition = tmp_path / "mood4.yaml"
    definition.write_text(CUSTOM)
    responses = tmp_path / "mood.csv"
    responses.write_text("id,m1,m2,m3,m4\na,4,1,3,2\nb,4,,3,2\nc,4,,,2\n")
    result = flourish(
        "instruments", "score", str(definition), "--responses", str(responses),
        "--language", "de",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # a: 4 + (5-1) + 3 + 2 = 13; b: (4+3+2) * 4/3 = 12, prorated; c: 2 of 4 answered: missing.
    assert [(row["id"], row["total"], row["total_flag"]) for row in rows(result.stdout)] == [
        ("a", "13", ""),
        ("b", "12", "prorated: 3 of 4 items"),
        ("c", "", ""),
    ]
    assert result.stderr.splitlines() == [
        "Mood-4: 3 respondents; scores: 1 complete, 1 missing, "
        "1 prorated or from fewer items (flagged)",
        "  total (Stimmung gesamt): 1 missing, 1 flagged",
    ]


def test_an_invalid_custom_instrument_file_reports_its_problems(flourish, tmp_path):
    definition = tmp_path / "mood4.yaml"
    definition.write_text(CUSTOM.replace("method: sum", "method: summ"))
    responses = tmp_path / "mood.csv"
    responses.write_text("m1,m2,m3,m4\n1,1,1,1\n")
    result = flourish("instruments", "score", str(definition), "--responses", str(responses))
    assert result.exit_code == 1
    assert f"{definition}:" in result.stderr
    assert "method" in result.stderr


def test_an_unknown_instrument_id_suggests_the_closest(flourish, who5_csv):
    result = flourish("instruments", "score", "who6", "--responses", str(who5_csv))
    assert result.exit_code == 1
    assert "unknown instrument 'who6'" in result.stderr
    assert "who5" in result.stderr
