"""Synthetic studies: the protocol's design, the effects file's truth, reproducible by seed.

The recovery test checks the generator against the statistics, not against itself: with the
truth known, the mixed model's 95% confidence interval for the slope difference must contain
it in about 95% of independent studies, and dropout must follow the stated hazard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis.mixed import fit_lmm
from analysis.simulate import USAGE_COLUMNS, simulate_study, write_study
from analysis.simulate_effects import load_effects, parse_effects
from instruments.datafile import DataFileError
from study.protocol import load_protocol, parse_protocol

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "protocols" / "assistant-flourishing-rct.yaml"
EXAMPLE_EFFECTS = ROOT / "examples" / "effects" / "assistant-flourishing-rct.yaml"
SMALL = Path(__file__).resolve().parent / "data" / "small-trial.yaml"

CONTRACT = [
    "participant",
    "arm",
    "stratum_wellbeing",
    "stratum_age_band",
    "occasion",
    "wave",
    "days",
    "week",
    "consent_version",
    "status",
    "completed",
    "kind",
    "withdrawn",
    "who5_percentage",
    "ucla3_total",
    "swls_total",
    *USAGE_COLUMNS,
]


@pytest.fixture(scope="module")
def example():
    protocol = load_protocol(EXAMPLE)
    return protocol, load_effects(EXAMPLE_EFFECTS, protocol)


@pytest.fixture(scope="module")
def small():
    return load_protocol(SMALL)


def small_effects(protocol, text: str):
    return parse_effects(text, "effects.yaml", protocol)


UNBOUNDED = """
control_arm: control
outcomes:
  who5_percentage:
    intercept: 50
    slope: 0.2
    arms: {active: {slope: 1.5}}
    random_intercept_sd: 10
    random_slope_sd: 1.0
    correlation: -0.3
    residual_sd: 6
    bounds: null
    step: null
"""


def test_same_seed_gives_identical_files_and_another_seed_does_not(example, tmp_path):
    protocol, effects = example
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        write_study(simulate_study(protocol, effects, participants=60, seed=seed), tmp_path / name)
    for file in ("dataset.csv", "truth.json", "README.txt"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert (tmp_path / "a" / "dataset.csv").read_bytes() != (
        tmp_path / "c" / "dataset.csv"
    ).read_bytes()


def test_the_dataset_follows_the_analysis_contract(example):
    protocol, effects = example
    data = simulate_study(protocol, effects, participants=90, seed=1).data
    items = {item.id for i in ("who5", "ucla3", "swls") for item in protocol.instrument(i).items}
    assert [column for column in data.columns if column not in items] == CONTRACT
    assert items <= set(data.columns)  # the example simulates item answers too
    assert data["participant"].str.fullmatch(r"P-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}").all()
    # One row per participant and non-EMA occasion: baseline, 12 weekly waves, 3 follow-ups.
    assert data.groupby("participant").size().eq(16).all()
    assert not data.duplicated(["participant", "occasion", "wave"]).any()
    assert (data["week"] == data["days"] / 7).all()
    weekly = data[data["occasion"] == "weekly"]
    # Due at 19:00 on the scheduled date, after enrolling between 08:00 and 22:00.
    offset = weekly["days"] - 7 * weekly["wave"]
    assert offset.between((19 - 22) / 24, (19 - 8) / 24).all()
    assert set(data["status"]) <= {"completed", "missed", "cancelled"}
    assert (data["completed"] == (data["status"] == "completed")).all()
    assert (data["consent_version"] == "1.0").all()
    kinds = data.groupby("occasion")["kind"].unique().map(tuple).to_dict()
    assert kinds == {
        "baseline": ("baseline",),
        "weekly": ("wave",),
        "week_6": ("followup",),
        "week_12": ("followup",),
        "week_24": ("followup",),
    }
    # Scores only where the instrument was given and the occasion completed.
    assert data.loc[data["occasion"] == "week_6", "who5_percentage"].isna().all()
    assert data.loc[~data["completed"], ["who5_percentage", "swls_total"]].isna().all().all()
    done = data[data["completed"] & (data["occasion"] == "weekly")]
    assert done["who5_percentage"].notna().all()


def test_scores_are_on_the_instruments_scales(example):
    protocol, effects = example
    data = simulate_study(protocol, effects, participants=200, seed=2).data
    who5 = data["who5_percentage"].dropna()
    assert who5.between(0, 100).all() and (who5 % 4 == 0).all()
    ucla = data["ucla3_total"].dropna()
    assert ucla.between(3, 9).all() and (ucla % 1 == 0).all()
    assert data["swls_total"].dropna().between(5, 35).all()


def test_stratum_cut_from_the_simulated_baseline_score(example):
    protocol, effects = example
    data = simulate_study(protocol, effects, participants=200, seed=3).data
    baseline = data[data["occasion"] == "baseline"]
    # wellbeing: WHO-5 raw (percentage / 4) below 13 is "low".
    assert (
        (baseline["who5_percentage"] / 4 < 13) == (baseline["stratum_wellbeing"] == "low")
    ).all()


def test_allocation_follows_the_protocols_ratio(small, tmp_path):
    text = SMALL.read_text().replace("{active: 1, control: 1}", "{active: 2, control: 1}")
    text = text.replace("block_sizes: [2, 4]", "block_sizes: [3, 6]")
    protocol = parse_protocol(text, "ratio.yaml", SMALL.parent)
    effects = small_effects(protocol, UNBOUNDED)
    for n in (90, 301):
        data = simulate_study(protocol, effects, participants=n, seed=5).data
        counts = data.groupby("arm")["participant"].nunique()
        # Permuted blocks of at most 6: never more than one partial block away from 2:1.
        assert abs(counts["active"] - 2 * n / 3) <= 4
        assert counts.sum() == n


def test_dropout_follows_the_monthly_hazard(small):
    effects = small_effects(
        small,
        UNBOUNDED
        + """
dropout:
  monthly_hazard: {active: 0.10, control: 0.30}
  withdrawn_share: 0.25
""",
    )
    data = simulate_study(small, effects, participants=4000, seed=8).data
    last = data[data["wave"] == 4]  # weekly wave 4, about 28 days after enrollment
    for arm, hazard in (("active", 0.10), ("control", 0.30)):
        rows = last[last["arm"] == arm]
        expected = 1 - (1 - hazard) ** (rows["days"] / (365.25 / 12))
        gone = (~rows["completed"]).to_numpy()
        se = math.sqrt((expected * (1 - expected)).sum()) / len(rows)
        assert abs(gone.mean() - expected.mean()) < 4 * se
    # Of those who left, about a quarter withdrew (cancelled) and the rest stopped answering.
    gone = last[~last["completed"]]
    share = (gone["status"] == "cancelled").mean()
    assert (gone["withdrawn"] == (gone["status"] == "cancelled")).all()
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(gone))
    # Leaving is for good: nobody completes an occasion after a missed or cancelled one.
    ordered = data.sort_values(["participant", "days"])
    after_gap = ordered.groupby("participant")["completed"].apply(
        lambda done: bool((~done).cummax().to_numpy()[1:][done.to_numpy()[1:]].any())
    )
    assert not after_gap.any()


def test_intermittent_missingness_skips_single_occasions(small):
    effects = small_effects(small, UNBOUNDED + "dropout: {intermittent_missing: 0.2}\n")
    data = simulate_study(small, effects, participants=2000, seed=9).data
    after = data[data["occasion"] != "baseline"]
    assert data.loc[data["occasion"] == "baseline", "completed"].all()
    rate = 1 - after["completed"].mean()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(after))


def test_the_slope_difference_is_recovered_with_nominal_coverage(small):
    """In 40 independent studies the 95% CI holds the true slope difference (1.5 points a week)
    in at least 34: the chance of fewer at true 95% coverage is about 1%."""
    effects = small_effects(small, UNBOUNDED)
    term = 'C(arm, Treatment("control"))[T.active]:week'
    covered, estimates = 0, []
    for seed in range(40):
        data = simulate_study(small, effects, participants=60, seed=seed).data
        fit = fit_lmm(
            data,
            'who5_percentage ~ C(arm, Treatment("control")) * week',
            "participant",
            re_formula="~week",
        )
        row = fit.fixed.loc[term]
        covered += row["ci_lower"] <= 1.5 <= row["ci_upper"]
        estimates.append(row["estimate"])
    assert stats.binom.cdf(33, 40, 0.95) < 0.02
    assert covered >= 34
    # Unbiased: the mean estimate is within 3 Monte-Carlo SEs of the truth.
    estimates = np.array(estimates)
    assert abs(estimates.mean() - 1.5) < 3 * estimates.std(ddof=1) / math.sqrt(len(estimates))


def test_simulated_items_are_scored_by_the_key_and_as_reliable_as_the_model_implies(small):
    """Item noise SD is (6 / 4) / sqrt(5) = 0.67 per WHO-5 item (+ rounding, variance 1/12);
    the true-score SD per item is (8 / 4) / 5 = 0.4. Parallel items then have inter-item
    correlation r = 0.16 / (0.16 + 0.45 + 0.083) = 0.231 and Cronbach's alpha
    5r / (1 + 4r) = 0.60 (Spearman-Brown)."""
    from instruments.psychometrics import cronbach_alpha

    effects = small_effects(
        small,
        """
control_arm: control
outcomes:
  who5_percentage:
    intercept: 50
    arms: {active: {slope: 1.0}}
    random_intercept_sd: 8
    residual_sd: 6
    items: true
""",
    )
    data = simulate_study(small, effects, participants=3000, seed=13).data
    items = [f"who5_{i}" for i in range(1, 6)]
    answered = data[data["completed"]]
    assert (answered[items].sum(axis=1) * 4 == answered["who5_percentage"]).all()
    assert data.loc[~data["completed"], items].isna().all().all()
    assert answered[items].isin([0, 1, 2, 3, 4, 5]).all().all()
    r = 0.16 / (0.16 + (1.5**2) / 5 + 1 / 12)
    baseline = answered[answered["occasion"] == "baseline"]
    alpha = cronbach_alpha(baseline[items]).alpha
    assert alpha == pytest.approx(5 * r / (1 + 4 * r), abs=0.03)
    # The score's residual SD is still the outcome's (plus rounding): SD within a person-week.
    assert baseline["who5_percentage"].std() == pytest.approx(math.hypot(8, 6), rel=0.08)


def test_truth_json_records_the_generating_parameters(example, tmp_path):
    protocol, effects = example
    write_study(simulate_study(protocol, effects, participants=30, seed=4), tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    who5 = truth["outcomes"]["who5_percentage"]
    assert who5["intercept"] == 52 and who5["bounds"] == [0.0, 100.0] and who5["step"] == 4
    assert who5["contrasts_vs_control"]["reflective - control"]["slope_per_week"] == 0.6
    assert truth["protocol"]["content_hash"] == protocol.content_hash
    assert truth["seed"] == 4 and truth["participants"] == 30
    assert sum(truth["realised"]["allocated"].values()) == 30
    assert "Synthetic data" in (tmp_path / "README.txt").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (UNBOUNDED.replace("{active:", "{activ:"), "outcomes.who5_percentage.arms.activ: no arm"),
        (UNBOUNDED.replace("control_arm: control", "control_arm: placebo"), "control_arm: no arm"),
        (UNBOUNDED.replace("who5_percentage:", "swls_total:"), "swls_total: 'swls_total' is not"),
        (UNBOUNDED.replace("who5_percentage:", "who5_sum:"), "who5 has no score 'sum'"),
        (UNBOUNDED.replace("residual_sd: 6", "residual_sd: 0"), "residual_sd: input should be"),
        (UNBOUNDED + "dropouts: {}\n", "unknown key 'dropouts'; did you mean 'dropout'?"),
        (
            UNBOUNDED.replace("step: null", "step: null\n    items: true")
            + "  who5_raw: {intercept: 13, random_intercept_sd: 2, residual_sd: 2, items: true}\n",
            "who5_raw.items: items of who5 are already simulated for who5_percentage",
        ),
    ],
)
def test_effects_file_mistakes_name_file_line_and_field(small, text, message):
    with pytest.raises(DataFileError) as caught:
        small_effects(small, text)
    assert any(message in str(problem) for problem in caught.value.problems), caught.value
    assert all(str(problem).startswith("effects.yaml:") for problem in caught.value.problems)


def test_flourish_simulate_writes_the_study(flourish_cli, tmp_path):
    out = tmp_path / "sim"
    args = [str(EXAMPLE), "-n", "40", "--effects", str(EXAMPLE_EFFECTS), "--seed", "3"]
    result = flourish_cli("simulate", *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "dataset.csv", "truth.json"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("control_arm: nobody\noutcomes: {}\n")
    result = flourish_cli("simulate", *args[:4], str(bad), "--seed", "3", "--out", str(out))
    assert result.exit_code == 1
    assert f"{bad}:2: outcomes:" in result.output


@pytest.fixture
def flourish_cli():
    from click.testing import CliRunner

    from study.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)
