"""`flourish instruments redcap-export`, `redcap-import` and `reliability`."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pingouin
from click.testing import CliRunner

from instruments.loader import load_instrument
from instruments.redcap import REDCAP_COLUMNS
from study.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_redcap_export_prints_a_dictionary_of_the_library_instrument(tmp_path):
    result = run("instruments", "redcap-export", "who5")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert tuple(rows[0]) == REDCAP_COLUMNS
    assert [row[0] for row in rows[-5:]] == [f"who5_{i}" for i in range(1, 6)]

    out = tmp_path / "who5.csv"
    result = run("instruments", "redcap-export", "who5", "--out", str(out), "--no-record-id")
    assert result.exit_code == 0
    assert "record_id" not in out.read_text()


def test_redcap_export_of_an_unknown_instrument_fails_clearly():
    result = run("instruments", "redcap-export", "who6")
    assert result.exit_code != 0
    assert "who6" in result.output


def test_redcap_import_writes_yaml_that_loads_and_exports_the_same_dictionary(tmp_path):
    exported = run("instruments", "redcap-export", "swls").output
    dictionary = tmp_path / "swls_dictionary.csv"
    dictionary.write_text(exported)
    out_dir = tmp_path / "instruments"

    result = run("instruments", "redcap-import", str(dictionary), "--out-dir", str(out_dir))
    assert result.exit_code == 0, result.output
    written = out_dir / "swls.yaml"
    assert f"wrote {written}" in result.output
    assert load_instrument(written).item_ids == load_instrument_ids("swls")
    assert run("instruments", "redcap-export", str(written)).output == exported

    again = run("instruments", "redcap-import", str(dictionary), "--out-dir", str(out_dir))
    assert again.exit_code != 0
    assert "--force" in again.output


def load_instrument_ids(instrument_id: str) -> tuple[str, ...]:
    from instruments.catalogue import Library

    return Library.load().get(instrument_id).item_ids


def test_redcap_import_lists_unsupported_fields_and_can_skip_them(tmp_path):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REDCAP_COLUMNS)
    for name, kind, label, choices in (
        ("record_id", "text", "Record ID", ""),
        ("d1", "radio", "Okay?", "0, No | 1, Yes"),
        ("d_total", "calc", "Total", "[d1]*2"),
    ):
        writer.writerow([name, "diary", "", kind, label, choices] + [""] * 12)
    dictionary = tmp_path / "d.csv"
    dictionary.write_text(out.getvalue())
    out_dir = tmp_path / "out"
    failed = run("instruments", "redcap-import", str(dictionary), "--out-dir", str(out_dir))
    assert failed.exit_code == 1
    assert "row 4 (field d_total): field type 'calc' is not supported" in failed.output
    assert not out_dir.exists()

    skipped = run(
        "instruments", "redcap-import", str(dictionary), "--out-dir", str(out_dir),
        "--skip-unsupported", "--id", "diary_check",
    )  # fmt: skip
    assert skipped.exit_code == 0, skipped.output
    assert "skipped row 4 (field d_total)" in skipped.output
    assert load_instrument(out_dir / "diary_check.yaml").item_ids == ("d1",)


def test_reliability_prints_alpha_per_wave_and_the_icc_across_waves(tmp_path):
    rng = np.random.default_rng(17)
    n = 300
    trait = rng.standard_normal(n)
    frames = []
    for wave in (1, 2):
        latent = trait[:, None] + 0.8 * rng.standard_normal((n, 5))
        answers = np.clip(np.rint(4 + 1.2 * latent), 1, 7).astype(int)
        frame = pd.DataFrame(answers, columns=[f"swls_{i}" for i in range(1, 6)])
        frames.append(frame.assign(id=[f"p{i}" for i in range(n)], wave=wave))
    responses = pd.concat(frames, ignore_index=True)
    responses.loc[0, "swls_3"] = np.nan  # one missing item: still counted pairwise
    path = tmp_path / "responses.csv"
    responses.astype({"swls_3": "Int64"}).to_csv(path, index=False)
    out = tmp_path / "reliability.csv"

    result = run("instruments", "reliability", "swls", "--responses", str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    alpha = table[(table.statistic == "alpha") & (table.wave == 1)].iloc[0]
    items = responses.loc[responses.wave == 1, [f"swls_{i}" for i in range(1, 6)]]
    assert alpha["value"] == pingouin.cronbach_alpha(items)[0]
    assert (alpha["n"], alpha["n_complete"]) == (300, 299)
    assert "ICC(1,1)" in result.output
    assert "299 respondents, 2 waves" in result.output  # p0's wave-1 total is incomplete
    assert "1 subject(s) without" in result.output


def test_reliability_names_a_missing_wave_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,swls_1,swls_2,swls_3,swls_4,swls_5\np1,1,2,3,4,5\n")
    result = run("instruments", "reliability", "swls", "--responses", str(path))
    assert result.exit_code != 0
    assert "no column 'wave'" in result.output
