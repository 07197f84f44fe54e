"""The fast engine finds the same optimum as statsmodels' MixedLM on simulated trials.

The data are generated here with known parameters (300 participants x 13 weekly waves, three
arms, arm-by-week effects); the two engines must agree to 1e-3 relative on estimates and 1e-2
on standard errors, and the fixed effects must recover the generating values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.mixed import fit_lmm

ARMS = ("control", "instruct", "reflective")
TRUE_FIXED = {
    "Intercept": 50.0,
    "arm[T.instruct]": 0.0,
    "arm[T.reflective]": 0.0,
    "week": 0.1,
    "arm[T.instruct]:week": 0.3,
    "arm[T.reflective]:week": 0.15,
}
RTOL, SE_RTOL = 1e-3, 1e-2


def simulate(
    seed: int,
    participants: int = 300,
    waves: int = 13,
    sd=(8.0, 0.6),
    dropout_per_week: float = 0.0,
    skip: float = 0.0,
) -> pd.DataFrame:
    """score = 50 + 0.1 week + arm x week + u0 + u1 week + e (SD 5), one row per occasion;
    after dropout and skipped occasions the score is NaN (the row stays, as in the dataset)."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(len(ARMS), size=participants)
    u = rng.multivariate_normal(
        [0, 0],
        [[sd[0] ** 2, -0.2 * sd[0] * sd[1]], [-0.2 * sd[0] * sd[1], sd[1] ** 2]],
        participants,
    )
    pid = np.repeat(np.arange(participants), waves)
    week = np.tile(np.arange(waves), participants).astype(float)
    arm_slope = np.array([0.0, 0.3, 0.15])[arm[pid]]
    score = 50 + u[pid, 0] + (0.1 + arm_slope + u[pid, 1]) * week + rng.normal(0, 5, pid.size)
    gone = (
        week > rng.exponential(1 / dropout_per_week, participants)[pid]
        if dropout_per_week
        else False
    )
    skipped = (week > 0) & (rng.random(pid.size) < skip)
    score = np.where(gone | skipped, np.nan, score)
    return pd.DataFrame(
        {
            "pid": [f"P{i:04d}" for i in pid],
            "arm": np.array(ARMS)[arm[pid]],
            "week": week,
            "score": score,
        }
    )


def assert_engines_agree(fast, reference):
    scale = np.maximum(reference.fixed["estimate"].abs(), reference.fixed["se"])
    assert np.all(np.abs(fast.params - reference.params) <= RTOL * scale)
    np.testing.assert_allclose(fast.fixed["se"], reference.fixed["se"], rtol=SE_RTOL)
    np.testing.assert_allclose(np.diag(fast.random_cov), np.diag(reference.random_cov), rtol=RTOL)
    # Covariances compare on the scale of the variances (they may be near zero).
    sd = np.sqrt(np.diag(reference.random_cov))
    assert np.all(
        np.abs(fast.random_cov - reference.random_cov).to_numpy() <= RTOL * np.outer(sd, sd)
    )
    assert fast.residual_var == pytest.approx(reference.residual_var, rel=RTOL)
    assert fast.loglik == pytest.approx(reference.loglik, rel=RTOL)
    assert fast.converged and reference.converged
    assert (fast.n_obs, fast.n_groups) == (reference.n_obs, reference.n_groups)


def fit_both(data, re_formula="~week", reml=True, formula="score ~ arm * week"):
    return tuple(
        fit_lmm(data, formula, "pid", re_formula, reml=reml, engine=engine)
        for engine in ("fast", "statsmodels")
    )


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_engines_agree_on_a_complete_trial(reml):
    fast, reference = fit_both(simulate(seed=1), reml=reml)

    assert_engines_agree(fast, reference)
    assert fast.n_obs == 300 * 13 and fast.n_groups == 300
    assert not fast.singular and fast.warnings == []


def test_engines_agree_where_a_gradient_method_meets_a_saddle():
    # On this trial L-BFGS-B from lme4's start (Lambda = I) reaches the slope's diagonal entry
    # of Lambda at 0, where the deviance's gradient in it vanishes by symmetry although the
    # deviance falls on either side; statsmodels' first L-BFGS run stops short too. Both
    # engines must still end at the same, non-singular, maximum.
    fast, reference = fit_both(simulate(seed=11))

    assert_engines_agree(fast, reference)
    assert not fast.singular
    assert fast.random_cov.loc["week", "week"] == pytest.approx(0.36, rel=0.3)


def test_fixed_effects_recover_the_generating_values():
    fast, _ = fit_both(simulate(seed=12))

    z = (fast.params - pd.Series(TRUE_FIXED)) / fast.fixed["se"]
    assert list(fast.params.index) == list(TRUE_FIXED)
    assert np.all(np.abs(z) < 4), z
    # Each Wald interval covers or misses its true value consistently with its own bounds.
    covered = (fast.fixed["ci_lower"] <= pd.Series(TRUE_FIXED)) & (
        pd.Series(TRUE_FIXED) <= fast.fixed["ci_upper"]
    )
    assert covered.equals(z.abs() <= 1.959964)


def test_engines_agree_with_dropout_and_skipped_waves():
    data = simulate(seed=13, dropout_per_week=0.03, skip=0.1)

    fast, reference = fit_both(data)

    assert_engines_agree(fast, reference)
    answered = data["score"].notna()
    assert fast.n_obs == answered.sum() < len(data)
    per_participant = answered.groupby(data["pid"]).sum()
    assert per_participant.nunique() > 5  # groups of many different sizes
    assert f"data: {len(data) - answered.sum()} rows with missing values were left out" in (
        fast.warnings
    )


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_engines_agree_on_a_random_intercept_model(reml):
    fast, reference = fit_both(simulate(seed=14, dropout_per_week=0.03), re_formula=None, reml=reml)

    assert_engines_agree(fast, reference)
    assert list(fast.random_cov.index) == ["Intercept"]


def test_engines_agree_with_three_random_effects_per_participant():
    # A time-varying covariate (like weekly usage) with its own random slope: SD 1 around 0.5.
    data = simulate(seed=15, dropout_per_week=0.02)
    rng = np.random.default_rng(15)
    person = data["pid"].str[1:].astype(int)
    data["usage"] = rng.normal(0, 1, len(data))
    data["score"] += (0.5 + rng.normal(0, 1.0, 300)[person]) * data["usage"]

    fast, reference = fit_both(data, "~week + usage", formula="score ~ arm * week + usage")

    assert_engines_agree(fast, reference)
    assert list(fast.random_cov.index) == ["Intercept", "week", "usage"]
    assert fast.random_cov.loc["usage", "usage"] == pytest.approx(1.0, abs=0.3)


def boundary_trial(seed: int) -> pd.DataFrame:
    """A trial whose participants have no slope variation at all: the true slope SD is 0 and
    each participant's own week trend is removed from their noise, so every participant's
    least-squares slope equals their arm's. The slope variance's estimate must be 0."""
    data = simulate(seed=seed, sd=(8.0, 0.0))
    week_c = data["week"] - data.groupby("pid")["week"].transform("mean")
    noise = data["score"] - data.groupby("pid")["score"].transform("mean")
    own_slope = (noise * week_c).groupby(data["pid"]).transform("sum") / (week_c**2).groupby(
        data["pid"]
    ).transform("sum")
    arm_slope = data["arm"].map({"control": 0.1, "instruct": 0.4, "reflective": 0.25})
    return data.assign(score=data["score"] - (own_slope - arm_slope) * week_c)


def test_both_engines_report_a_slope_variance_on_the_boundary():
    fast, reference = fit_both(boundary_trial(seed=18))

    for fit in (fast, reference):
        assert fit.singular and fit.converged
        assert fit.random_cov.loc["week", "week"] < 1e-6 * fit.residual_var
        assert any(
            w.startswith("boundary (singular fit): the variance of the random effect 'week'")
            for w in fit.warnings
        )
    assert any(
        "MLE may be on the boundary" in w and "confirmed: the singularity check" in w
        for w in reference.warnings
    )
    assert fast.loglik == pytest.approx(reference.loglik, rel=RTOL)
    assert fast.random_cov.loc["Intercept", "Intercept"] == pytest.approx(
        reference.random_cov.loc["Intercept", "Intercept"], rel=RTOL
    )


@pytest.mark.parametrize("seed, reml", [(17, True), (16, False)])
def test_at_the_boundary_the_fast_fit_is_never_worse_than_statsmodels(seed, reml):
    # On these trials statsmodels' L-BFGS often stops short of the boundary (a positive slope
    # variance, a lower likelihood, "failed to converge"). Whatever it does, the profiled fit
    # reaches the boundary, its likelihood is not below statsmodels', and a statsmodels fit
    # that did not converge says so in its warnings.
    fast, reference = fit_both(boundary_trial(seed=seed), reml=reml)

    assert fast.singular and fast.converged
    assert fast.loglik >= reference.loglik - 1e-6
    if not reference.converged:
        assert any(
            w.startswith("convergence: the statsmodels optimiser") for w in reference.warnings
        )
