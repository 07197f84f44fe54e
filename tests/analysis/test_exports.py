"""Exports read back: CSV, Parquet (pyarrow), SPSS and Stata (pyreadstat) carry the same data,
labels and value labels; the codebook describes scores from the instrument definitions; the
Frictionless and Psych-DS metadata describe every column and record the snapshot hash."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest

from analysis.codebook import STATA_NAME_LIMIT, build_codebook
from analysis.exports import ExportMeta, read_csv, snapshot_hash, write_export
from study.protocol import load_protocol

from .conftest import EXAMPLE_PROTOCOL

LONG = "flourishing_scale_a_rather_long_derived_score_name"
LONG_TWIN = "flourishing_scale_a_rather_long_derived_score_other"
META = ExportMeta(
    slug="assistant-flourishing-rct",
    title="Assistant Flourishing Trial",
    description="Twelve weeks, three arms.",
    created_at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
    software={"python": "3.11"},
)


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(EXAMPLE_PROTOCOL)


@pytest.fixture
def data() -> pd.DataFrame:
    """Two participants x two occasions in the contract's shape, with missing values."""
    return pd.DataFrame(
        {
            "participant": ["P-AAAA1111", "P-AAAA1111", "P-BBBB2222", "P-BBBB2222"],
            "arm": ["reflective", "reflective", "control", "control"],
            "stratum_wellbeing": ["low", "low", "high", "high"],
            "stratum_age_band": ["under_35", "under_35", "age_35_plus", "age_35_plus"],
            "occasion": ["baseline", "weekly", "baseline", "weekly"],
            "wave": [0, 1, 0, 1],
            "days": [0.0, 7 + 10 / 24, 0.0, 7 + 10 / 24],
            "week": [0.0, (7 + 10 / 24) / 7, 0.0, (7 + 10 / 24) / 7],
            "consent_version": ["1.0", "1.0", "1.0", "1.0"],
            "status": ["completed", "completed", "completed", "missed"],
            "completed": [True, True, True, False],
            "who5_percentage": [40.0, 52.0, 68.0, np.nan],
            "ucla3_total": [7.0, 6.0, 3.0, np.nan],
            LONG: [1.5, np.nan, 2.0, np.nan],
            LONG_TWIN: [0.5, np.nan, 1.0, np.nan],
            "usage_sessions": [0.0, 4.0, 0.0, 0.0],
            "usage_night_share": [np.nan, 0.25, np.nan, np.nan],
        }
    )


@pytest.fixture
def exported(tmp_path, data, protocol):
    codebook = build_codebook(data, protocol)
    return write_export(data, codebook, tmp_path, meta=META), codebook


def test_the_snapshot_hash_is_the_sha256_of_the_canonical_csv(exported, data, tmp_path):
    result, _ = exported
    content = result.files["csv"].read_bytes()
    assert result.sha256 == hashlib.sha256(content).hexdigest() == snapshot_hash(data)
    assert content.startswith(b"participant,arm,stratum_wellbeing,")
    assert b"\r\n" not in content
    changed = data.copy()
    changed.loc[0, "who5_percentage"] = 44.0
    assert snapshot_hash(changed) != result.sha256
    package = json.loads(result.files["datapackage"].read_text())
    assert package["resources"][0]["hash"] == f"sha256:{result.sha256}"
    assert package["flourish"]["snapshot_sha256"] == result.sha256
    description = json.loads(result.files["psych_ds"].read_text())
    assert description["distribution"][0]["sha256"] == result.sha256


def test_csv_and_parquet_read_back_to_the_same_data(exported, data):
    result, _ = exported
    # Read with the types the datapackage gives: the consent version "1.0" stays text.
    from_csv = read_csv(result.files["csv"])
    pd.testing.assert_frame_equal(from_csv, data, check_dtype=False)
    assert from_csv["consent_version"].tolist() == ["1.0"] * 4
    table = pq.read_table(result.files["parquet"])
    pd.testing.assert_frame_equal(table.to_pandas(), data, check_dtype=False)
    field = table.schema.field("who5_percentage")
    assert field.metadata[b"label"].decode() == "WHO-5: WHO-5 percentage score"
    assert field.metadata[b"units"].decode() == "points (0 to 100)"


def test_spss_keeps_labels_value_labels_and_missing_values(exported, data):
    result, _ = exported
    frame, meta = pyreadstat.read_sav(str(result.files["sav"]))
    assert meta.column_names == list(data.columns)
    assert meta.column_names_to_labels["arm"] == "Arm the participant was allocated to"
    assert meta.column_names_to_labels["who5_percentage"] == "WHO-5: WHO-5 percentage score"
    # Arms are coded in protocol order, labelled with their keys.
    assert meta.variable_value_labels["arm"] == {1: "instruct", 2: "reflective", 3: "control"}
    assert meta.variable_value_labels["status"][7] == "cancelled"
    assert meta.variable_value_labels["completed"] == {0: "no", 1: "yes"}
    assert meta.variable_measure["arm"] == "nominal"
    assert meta.variable_measure["who5_percentage"] == "scale"
    assert frame["arm"].tolist() == [2, 2, 3, 3]
    assert frame["completed"].tolist() == [1, 1, 1, 0]
    assert math.isnan(frame["who5_percentage"][3]) and frame["who5_percentage"][1] == 52.0
    labelled, _ = pyreadstat.read_sav(str(result.files["sav"]), apply_value_formats=True)
    assert labelled["arm"].astype(str).tolist() == data["arm"].tolist()
    assert labelled["stratum_age_band"].astype(str).tolist() == data["stratum_age_band"].tolist()
    assert frame["participant"].tolist() == data["participant"].tolist()


def test_stata_names_fit_32_characters_as_the_codebook_maps_them(exported, data):
    result, codebook = exported
    frame, meta = pyreadstat.read_dta(str(result.files["dta"]))
    mapping = codebook.stata_names
    assert set(mapping) == {LONG, LONG_TWIN}
    assert all(len(name) <= STATA_NAME_LIMIT for name in meta.column_names)
    assert len(set(meta.column_names)) == len(data.columns)
    assert meta.column_names == [mapping.get(name, name) for name in data.columns]
    assert frame[mapping[LONG]].tolist()[0] == 1.5 and frame[mapping[LONG_TWIN]].tolist()[0] == 0.5
    assert meta.variable_value_labels["arm"] == {1: "instruct", 2: "reflective", 3: "control"}
    assert meta.column_names_to_labels["who5_percentage"] == "WHO-5: WHO-5 percentage score"
    assert all(len(label) <= 80 for label in meta.column_labels)
    codebook_csv = pd.read_csv(result.files["codebook_csv"], keep_default_na=False)
    assert codebook_csv.set_index("name").loc[LONG, "stata_name"] == mapping[LONG]


def test_the_codebook_describes_scores_from_the_instrument_definitions(exported):
    result, codebook = exported
    who5 = codebook.variable("who5_percentage")
    # WHO-5: five items scored 0-5, raw 0-25, percentage = raw x 4 (Topp et al. 2015).
    assert who5.units == "points (0 to 100)" and who5.scoring == "raw x 4"
    assert "Topp CW" in who5.citation and who5.instrument.startswith("WHO-5 Well-Being Index")
    ucla3 = codebook.variable("ucla3_total")  # three items scored 1-3 (Hughes et al. 2004)
    assert ucla3.units == "points (3 to 9)" and "Hughes ME" in ucla3.citation
    assert (
        codebook.variable("arm").values["reflective"] == "Reflective assistant (positive alignment)"
    )
    assert codebook.variable("days").units == "days"
    markdown = result.files["codebook_md"].read_text()
    assert (
        "| who5_percentage | who5_percentage | number | WHO-5: WHO-5 percentage score |" in markdown
    )
    assert "### ucla3_total" in markdown and "Hughes ME" in markdown
    table = pd.read_csv(result.files["codebook_csv"], keep_default_na=False)
    assert table["name"].tolist() == codebook.names
    assert (
        table.set_index("name").loc["arm", "codes"] == "1 = instruct; 2 = reflective; 3 = control"
    )


def test_frictionless_table_schema_describes_every_column(exported, data):
    result, _ = exported
    package = json.loads(result.files["datapackage"].read_text())
    assert package["profile"] == "tabular-data-package"
    resource = package["resources"][0]
    assert resource["path"] == "data/study-assistantflourishingrct_data.csv"
    fields = resource["schema"]["fields"]
    assert [f["name"] for f in fields] == list(data.columns)
    by_name = {f["name"]: f for f in fields}
    assert by_name["wave"]["type"] == "integer" and by_name["completed"]["type"] == "boolean"
    assert by_name["arm"]["constraints"]["enum"] == ["instruct", "reflective", "control"]
    assert resource["schema"]["primaryKey"] == ["participant", "occasion", "wave"]
    assert {r["format"] for r in package["resources"]} == {"csv", "parquet", "sav", "dta"}
    sav = next(r for r in package["resources"] if r["format"] == "sav")
    digest = hashlib.sha256(result.files["sav"].read_bytes()).hexdigest()
    assert sav["hash"] == f"sha256:{digest}"


def test_psych_ds_description_lists_every_column_and_a_valid_data_file_name(exported, data):
    result, _ = exported
    description = json.loads(result.files["psych_ds"].read_text())
    assert description["@context"] == "https://schema.org/" and description["@type"] == "Dataset"
    assert description["name"] == META.title and description["description"]
    assert [v["name"] for v in description["variableMeasured"]] == list(data.columns)
    assert all(v["@type"] == "PropertyValue" for v in description["variableMeasured"])
    csv_path = result.files["csv"]
    assert (
        csv_path.parent.name == "data" and csv_path.parent.parent == result.files["psych_ds"].parent
    )
    assert re.fullmatch(r"([a-z]+-[a-zA-Z0-9]+)(_[a-z]+-[a-zA-Z0-9]+)*_data\.csv", csv_path.name)


def test_only_the_formats_asked_for_are_written_besides_the_csv(tmp_path, data, protocol):
    codebook = build_codebook(data, protocol)
    result = write_export(data, codebook, tmp_path, ("csv", "dta"), meta=META)
    assert "dta" in result.files and "sav" not in result.files and "parquet" not in result.files
    assert not list(tmp_path.glob("*.sav"))
    with pytest.raises(ValueError, match="unknown export format"):
        write_export(data, codebook, tmp_path, ("xlsx",), meta=META)
