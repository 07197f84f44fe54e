"""Power by simulation: nominal type-I error at no effect, more power with more participants.

Small designs (two arms, baseline and four weekly waves) keep each replicate to a fraction of
a second. Type-I error is checked at alpha = 0.2, where 120 replicates resolve the rejection
rate to a Monte-Carlo SE of about 0.037, tighter relative to alpha than alpha = 0.05 allows at
this cost.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from analysis.power import PowerSettings, contrasts, run_power
from analysis.simulate_effects import parse_effects
from study.protocol import load_protocol

SMALL = Path(__file__).resolve().parent / "data" / "small-trial.yaml"

EFFECTS = """
control_arm: control
outcomes:
  who5_percentage:
    intercept: 50
    slope: 0.0
    arms: {{active: {{slope: {slope}}}}}
    random_intercept_sd: 10
    random_slope_sd: 1.0
    residual_sd: 8
    bounds: null
    step: null
"""


@pytest.fixture(scope="module")
def small():
    return load_protocol(SMALL)


def effects(protocol, slope: float):
    return parse_effects(EFFECTS.format(slope=slope), "effects.yaml", protocol)


def test_power_at_no_effect_is_the_type_one_error_rate(small):
    settings = PowerSettings(sizes=(30,), reps=120, seed=2026, alpha=0.2)
    ticks = []
    result = run_power(small, effects(small, 0.0), settings, progress=ticks.append)
    (row,) = result.rows
    assert row.contrast == "active - control" and row.true_difference == 0
    assert sum(ticks) == 120 and row.reps == 120 and row.failed == 0
    assert row.mc_se == pytest.approx(math.sqrt(row.power * (1 - row.power) / 120))
    # Within 3 Monte-Carlo SEs of alpha (SE at alpha: sqrt(0.2 * 0.8 / 120) = 0.037).
    assert abs(row.power - 0.2) < 3 * math.sqrt(0.2 * 0.8 / 120)


def test_power_grows_with_participants_as_the_normal_approximation_says(small):
    """With complete, balanced data each participant's least-squares slope has variance
    sd_slope^2 + sd_residual^2 / Sxx (Sxx = 10 for weeks 0-4), so the arm difference in slopes
    has SE sqrt(2 (1 + 64 / 10) / (n / 2)) and power follows from the normal distribution."""
    settings = PowerSettings(sizes=(16, 80), reps=40, seed=7)
    result = run_power(small, effects(small, 1.2), settings)
    few, many = result.rows
    assert (few.participants, many.participants) == (16, 80)
    assert many.power - few.power > 2 * math.hypot(few.mc_se, many.mc_se)
    for row in (few, many):
        se = math.sqrt(2 * (1 + 64 / 10) / (row.participants / 2))
        z = stats.norm.ppf(0.975)
        expected = stats.norm.cdf(1.2 / se - z) + stats.norm.cdf(-1.2 / se - z)
        # + 0.05: a Wald z test with 8 participants per arm rejects a little too often.
        assert abs(row.power - expected) < 3 * math.sqrt(expected * (1 - expected) / 40) + 0.05


def test_the_same_seed_gives_the_same_result_whatever_the_workers(small):
    one = run_power(small, effects(small, 0.8), PowerSettings(sizes=(20,), reps=6, seed=3))
    two = run_power(
        small, effects(small, 0.8), PowerSettings(sizes=(20,), reps=6, seed=3, workers=2)
    )
    assert [r.rejections for r in one.rows] == [r.rejections for r in two.rows]
    assert one.rows[0].mean_estimate == two.rows[0].mean_estimate


def test_named_contrasts_and_their_truth(small):
    example = Path(__file__).resolve().parents[2] / "examples"
    protocol = load_protocol(example / "protocols" / "assistant-flourishing-rct.yaml")
    from analysis.simulate_effects import load_effects

    truth = load_effects(example / "effects" / "assistant-flourishing-rct.yaml", protocol)
    arms = ["instruct", "reflective", "control"]
    default = contrasts(truth, "who5_percentage", arms, None)
    assert [(c.label, c.truth) for c in default] == [
        ("instruct - control", 0.25),
        ("reflective - control", 0.6),
    ]
    (pair,) = contrasts(truth, "who5_percentage", arms, "reflective-instruct")
    assert pair.label == "reflective - instruct" and pair.truth == pytest.approx(0.35)
    with pytest.raises(ValueError, match="no arm 'placebo'"):
        contrasts(truth, "who5_percentage", arms, "placebo")


def test_flourish_power_prints_a_table_or_json(small, tmp_path):
    from click.testing import CliRunner

    from study.cli import main

    file = tmp_path / "effects.yaml"
    file.write_text(EFFECTS.format(slope=1.0))
    args = ["power", str(SMALL), "--effects", str(file), "-n", "12,20", "--reps", "3"]
    result = CliRunner().invoke(main, [*args, "--seed", "1", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["participants"] for row in data["rows"]] == [12, 20]
    assert data["outcome"] == "who5_percentage" and data["alpha"] == 0.05
    table = CliRunner().invoke(main, [*args, "--seed", "1"], catch_exceptions=False)
    assert "active - control" in table.stdout and "MC SE" in table.stdout


SMALL_PREREG = """
title: Small trial
authors: [{name: Test Analyst}]
data_status: {collected: "no"}
hypotheses:
  - {id: h1, text: Active improves faster., outcome: who5_percentage, contrast: active_slope,
     direction: greater}
outcomes: {primary: [who5_percentage]}
arms: {variable: arm, reference: control}
models:
  - {id: primary, formula: who5_percentage ~ arm * week, groups: participant, re_formula: "~ week"}
contrasts:
  - {id: active_slope, model: primary, weights: {"arm[T.active]:week": 1}}
multiplicity: {method: holm}
sample_size: {target: 40, rationale: a test}
"""


def test_with_a_preregistration_the_plan_itself_is_tested(small):
    """The hypothesis predicts improvement; the simulated arm gets worse by 1.2 points a week.
    The plan's one-sided test then never supports it, where a two-sided test mostly would."""
    from analysis.preregistration import parse_preregistration

    prereg = parse_preregistration(SMALL_PREREG, "prereg.yaml")
    worse = effects(small, -1.2)
    settings = PowerSettings(sizes=(60,), reps=8, seed=4)
    (planned,) = run_power(small, worse, settings, prereg=prereg).rows
    (two_sided,) = run_power(small, worse, settings).rows
    assert (planned.contrast, planned.true_difference) == ("active_slope", -1.2)
    assert planned.power == 0 and planned.failed == 0
    assert two_sided.power >= 0.5
    # Same simulated studies, same model: the same estimates.
    assert planned.mean_estimate == pytest.approx(two_sided.mean_estimate, rel=1e-6)


def test_the_family_of_the_example_preregistration_and_its_truth():
    from analysis.power_plan import family_contrasts, family_only
    from analysis.preregistration import load_preregistration
    from analysis.simulate_effects import load_effects

    example = Path(__file__).resolve().parents[2] / "examples"
    protocol = load_protocol(example / "protocols" / "assistant-flourishing-rct.yaml")
    truth = load_effects(example / "effects" / "assistant-flourishing-rct.yaml", protocol)
    prereg = load_preregistration(example / "preregistrations" / "assistant-flourishing-rct.yaml")
    found = family_contrasts(prereg, truth)
    assert [(c.label, c.truth) for c in found] == [
        ("reflective_vs_control_slope", 0.6),
        ("instruct_vs_control_slope", 0.25),
        ("reflective_vs_instruct_slope", pytest.approx(0.35)),
    ]
    slim = family_only(prereg).model
    assert [m.id for m in slim.models] == ["primary"] and slim.sensitivity == ()
    assert [c.id for c in slim.contrasts] == [c.label for c in found]
