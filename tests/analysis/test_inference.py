"""Likelihood-ratio tests, contrasts, multiplicity corrections and effect sizes.

Expected values come from outside this code: lme4 (../shared/reference/lme4-sleepstudy.md and
lme4's `anova(fm2, fm1)` on sleepstudy), the worked example of Benjamini & Hochberg (1995),
statsmodels' multipletests, a refit with another reference level, and simulated trials with
known parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.inference import (
    adjust,
    baseline_variance,
    benjamini_hochberg,
    contrasts,
    holm,
    likelihood_ratio_test,
    slope_differences,
    standardised_slope_difference,
)
from analysis.mixed import fit_lmm
from tests.analysis.test_lmm_fast import simulate

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"


@pytest.fixture(scope="module")
def sleepstudy():
    return pd.read_csv(REFERENCE / "sleepstudy.csv")


@pytest.fixture(scope="module")
def trial():
    data = simulate(seed=21, participants=600, dropout_per_week=0.02)
    return fit_lmm(data, "score ~ arm * week", "pid", "~week", reml=False)


# --- likelihood-ratio tests ------------------------------------------------------------------


def test_lrt_of_the_random_slope_matches_lme4s_anova(sleepstudy):
    intercept = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", reml=False)
    slope = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days", reml=False)

    test = likelihood_ratio_test(intercept, slope)

    # lme4: anova(fm2, fm1): logLik -897.04 and -875.97, Chisq 42.139, Df 2, p 7.072e-10.
    assert intercept.loglik == pytest.approx(-897.04, abs=5e-3)
    assert test.statistic == pytest.approx(42.139, abs=1e-3)
    assert test.df == 2
    assert test.p == pytest.approx(7.072e-10, rel=1e-3)
    # The variance's null value is on the boundary: the mixture p-value is the smaller one.
    assert test.p_boundary < test.p
    assert "boundary" in test.note


def test_reml_fits_compare_random_effects_but_refuse_different_fixed_effects(sleepstudy):
    intercept = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject")
    slope = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days")
    no_days = fit_lmm(sleepstudy, "Reaction ~ 1", "Subject", "~Days")

    assert likelihood_ratio_test(intercept, slope).criterion == "REML"
    with pytest.raises(ValueError, match="refit both with reml=False"):
        likelihood_ratio_test(no_days, slope)


def test_lrt_of_a_fixed_effect_agrees_between_engines(sleepstudy):
    statistics = []
    for engine in ("fast", "statsmodels"):
        small = fit_lmm(sleepstudy, "Reaction ~ 1", "Subject", "~Days", reml=False, engine=engine)
        large = fit_lmm(
            sleepstudy, "Reaction ~ Days", "Subject", "~Days", reml=False, engine=engine
        )
        test = likelihood_ratio_test(small, large)
        assert test.df == 1 and test.p_boundary is None
        statistics.append(test.statistic)

    assert statistics[0] == pytest.approx(statistics[1], rel=1e-3)


def test_lrt_refuses_models_of_different_data_or_not_nested(sleepstudy):
    full = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days", reml=False)
    fewer_rows = fit_lmm(sleepstudy.iloc[10:], "Reaction ~ 1", "Subject", "~Days", reml=False)
    other = fit_lmm(
        sleepstudy.assign(D2=sleepstudy["Days"] ** 2), "Reaction ~ D2", "Subject", reml=False
    )

    with pytest.raises(ValueError, match="different rows"):
        likelihood_ratio_test(fewer_rows, full)
    # As many rows, but not the same ones: subject 308's first day missing here, its last there.
    first = sleepstudy.drop(index=0)
    last = sleepstudy.drop(index=9)
    with pytest.raises(ValueError, match="different rows"):
        likelihood_ratio_test(
            fit_lmm(first, "Reaction ~ 1", "Subject", "~Days", reml=False),
            fit_lmm(last, "Reaction ~ Days", "Subject", "~Days", reml=False),
        )
    with pytest.raises(ValueError, match="not a subset"):
        likelihood_ratio_test(other, full)
    with pytest.raises(ValueError, match="more parameters"):
        likelihood_ratio_test(full, full)


def test_ml_lrt_of_an_interaction_is_close_to_its_wald_test(trial):
    data = simulate(seed=21, participants=600, dropout_per_week=0.02)
    without = fit_lmm(data, "score ~ arm + week", "pid", "~week", reml=False)

    test = likelihood_ratio_test(without, trial)

    wald = slope_differences(trial).loc[["instruct - reference", "reflective - reference"]]
    estimate = wald["estimate"].to_numpy()
    terms = ["arm[T.instruct]:week", "arm[T.reflective]:week"]
    wald_chi2 = estimate @ np.linalg.solve(trial.cov_fixed.loc[terms, terms], estimate)
    assert test.df == 2
    assert test.statistic == pytest.approx(wald_chi2, rel=0.05)  # asymptotically equal


# --- multiplicity corrections ----------------------------------------------------------------

# Benjamini & Hochberg (1995, JRSS B 57:289-300), section 4: 15 p-values; at 0.05 their
# procedure rejects 4 hypotheses, while Bonferroni-type procedures (Holm) reject 3.
BH_EXAMPLE = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
              0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000]  # fmt: skip


def test_benjamini_hochberg_and_holm_on_the_published_example():
    assert (benjamini_hochberg(BH_EXAMPLE) <= 0.05).sum() == 4
    assert (holm(BH_EXAMPLE) <= 0.05).sum() == 3


def test_worked_example_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then the
    # running maximum. BH: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04, running minimum
    # from the largest.
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])


@pytest.mark.parametrize("method, theirs", [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_match_statsmodels(method, theirs):
    p = np.random.default_rng(5).uniform(0, 0.2, size=40) ** 2

    np.testing.assert_allclose(adjust(p, method), multipletests(p, method=theirs)[1])


def test_unknown_correction_is_refused():
    with pytest.raises(ValueError, match="unknown correction 'bonf'"):
        adjust([0.1], "bonf")


# --- contrasts and effect sizes ---------------------------------------------------------------


def test_slope_difference_equals_a_refit_with_another_reference_arm(trial):
    data = simulate(seed=21, participants=600, dropout_per_week=0.02)
    releveled = fit_lmm(
        data, "score ~ C(arm, Treatment('reflective')) * week", "pid", "~week", reml=False
    )

    ours = slope_differences(trial).loc["reflective - instruct"]

    theirs = releveled.fixed.loc["C(arm, Treatment('reflective'))[T.instruct]:week"]
    assert -ours["estimate"] == pytest.approx(theirs["estimate"], rel=1e-6)
    assert ours["se"] == pytest.approx(theirs["se"], rel=1e-4)
    assert ours["p"] == pytest.approx(theirs["p"], rel=1e-3)
    assert set(slope_differences(trial).index) == {
        "instruct - reference",
        "reflective - reference",
        "reflective - instruct",
    }


def test_contrasts_refuse_unknown_terms(trial):
    with pytest.raises(ValueError, match="unknown terms: armX"):
        contrasts(trial, {"bad": {"armX": 1.0}})
    with pytest.raises(ValueError, match="no arm-by-days interaction"):
        slope_differences(trial, time="days")


def test_standardised_effect_on_sleepstudy_from_lme4s_estimates(sleepstudy):
    fit = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days")
    days = contrasts(fit, {"Days": {"Days": 1.0}}).loc["Days"]

    effect = standardised_slope_difference(fit, days, duration=9, time="Days")

    # lme4 REML: slope 10.46729, var(Intercept) 612.100, residual variance 654.940.
    expected = 10.46729 * 9 / np.sqrt(612.100 + 654.940)
    assert effect["d"] == pytest.approx(expected, rel=1e-3)
    assert effect["ci_lower"] < effect["d"] < effect["ci_upper"]
    assert baseline_variance(fit, time="Days", at=0) == pytest.approx(612.100 + 654.940, rel=1e-3)


def test_standardised_effect_recovers_the_simulated_truth():
    data = simulate(seed=22, participants=3000, dropout_per_week=0.02)
    fit = fit_lmm(data, "score ~ arm * week", "pid", "~week")
    instruct = slope_differences(fit).loc["instruct - reference"]

    effect = standardised_slope_difference(fit, instruct, duration=12)

    truth = 0.3 * 12 / np.sqrt(8.0**2 + 5.0**2)  # slope difference x 12 weeks / baseline SD
    assert effect["ci_lower"] < truth < effect["ci_upper"]
    assert effect["d"] == pytest.approx(truth, abs=0.05)


def test_satterthwaite_contrast_for_days_is_lmertests(sleepstudy):
    fit = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days")

    days = contrasts(fit, {"Days": {"Days": 1.0}}, df_method="satterthwaite").loc["Days"]

    assert days["df"] == pytest.approx(17, rel=1e-2)  # lmerTest: about 17 (REML)
    wald = contrasts(fit, {"Days": {"Days": 1.0}}).loc["Days"]
    assert np.isnan(wald["df"]) and days["p"] > wald["p"]
    with pytest.raises(ValueError, match="REML fits with the fast engine"):
        ml = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days", reml=False)
        contrasts(ml, {"Days": {"Days": 1.0}}, df_method="satterthwaite")


def test_satterthwaite_df_of_a_slope_difference_lie_between_arms_and_participants():
    data = simulate(seed=23, participants=90, dropout_per_week=0.03, skip=0.1)
    fit = fit_lmm(data, "score ~ arm * week", "pid", "~week")

    table = slope_differences(fit, df_method="satterthwaite")

    # A between-participant contrast of slopes: its df are bounded by the participants (less
    # the 6 fixed effects' worth) and far above the handful an arm count would give.
    assert table["df"].between(30, 90).all(), table["df"]
