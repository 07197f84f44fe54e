"""Reliability statistics checked against published values, population parameters of data
generated from known models, and hand-computed ANOVA tables; never against their own output."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin
import pytest

from instruments.psychometrics import (
    alpha_from_covariance,
    cronbach_alpha,
    icc_repeated,
    item_total_correlations,
    mcdonald_omega,
    one_factor_fit,
    reliability_by_wave,
)
from instruments.schema import Instrument

# McDonald (1999) Test Theory, Table 6.3: covariances of the five SWLS items (reference file (b)2).
MCDONALD_SWLS = np.array(
    [
        [2.566, 1.560, 1.487, 1.195, 1.425],
        [1.560, 2.493, 1.283, 0.845, 1.313],
        [1.487, 1.283, 2.462, 1.127, 1.313],
        [1.195, 0.845, 1.127, 2.769, 1.323],
        [1.425, 1.313, 1.313, 1.323, 3.356],
    ]
)

# A one-factor population: item j = loading_j * F + e_j, Var(F) = 1, Var(e_j) = uniqueness_j.
LOADINGS = np.array([0.9, 0.8, 0.7, 0.6, 1.1, 0.5])
UNIQUENESSES = np.array([0.6, 0.7, 0.9, 1.0, 0.5, 1.2])
POPULATION_COV = np.outer(LOADINGS, LOADINGS) + np.diag(UNIQUENESSES)
POPULATION_OMEGA = LOADINGS.sum() ** 2 / (LOADINGS.sum() ** 2 + UNIQUENESSES.sum())
K = len(LOADINGS)
# Population alpha, straight from its definition on the population covariance matrix.
POPULATION_ALPHA = K / (K - 1) * (1 - np.trace(POPULATION_COV) / POPULATION_COV.sum())


def one_factor_sample(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    factor = rng.standard_normal((n, 1))
    errors = rng.standard_normal((n, K)) * np.sqrt(UNIQUENESSES)
    return pd.DataFrame(factor * LOADINGS + errors, columns=[f"q{i + 1}" for i in range(K)])


def standard_error_of_alpha(alpha: float, n: int, k: int) -> float:
    """Large-sample SE of alpha under compound symmetry (van Zyl, Neudecker & Nel 2000):
    sqrt(2k/(k-1) * (1-alpha)^2 / n). The one-factor population is close to compound symmetry,
    so this is the right order of magnitude for a tolerance."""
    return math.sqrt(2 * k / (k - 1) * (1 - alpha) ** 2 / n)


# --- alpha -----------------------------------------------------------------------------------


def test_alpha_from_mcdonalds_swls_covariance_matrix_is_the_published_0_8169():
    assert alpha_from_covariance(MCDONALD_SWLS) == pytest.approx(0.8169, abs=1e-4)


def test_alpha_from_a_correlation_matrix_is_the_standardised_alpha():
    # Standardised alpha = k r / (1 + (k - 1) r) for a mean inter-item correlation r.
    k, r = 4, 0.3
    correlations = np.full((k, k), r) + np.eye(k) * (1 - r)
    assert alpha_from_covariance(correlations) == pytest.approx(k * r / (1 + (k - 1) * r))


def test_alpha_on_a_large_one_factor_sample_recovers_the_population_alpha():
    n = 20_000
    result = cronbach_alpha(one_factor_sample(n, seed=20240501))
    # Four standard errors: a deterministic seed, but the tolerance is the one a fresh sample
    # would honour 99.99% of the time.
    tolerance = 4 * standard_error_of_alpha(POPULATION_ALPHA, n, K)
    assert tolerance < 0.01
    assert result.alpha == pytest.approx(POPULATION_ALPHA, abs=tolerance)
    assert (result.n, result.k, result.n_complete) == (n, K, n)


def test_feldt_interval_covers_the_population_alpha_95_times_in_100():
    replications, n = 600, 150
    covered = sum(
        result.ci_low < POPULATION_ALPHA < result.ci_high
        for result in (cronbach_alpha(one_factor_sample(n, seed=s)) for s in range(replications))
    )
    # Binomial SE of a 95% coverage over 600 samples is 0.009; allow three of them.
    assert 0.95 - 0.027 <= covered / replications <= 0.95 + 0.027


def test_feldt_interval_narrows_with_n():
    widths = []
    for n in (200, 2_000, 20_000):
        result = cronbach_alpha(one_factor_sample(n, seed=7), ci=0.95)
        assert result.ci_low < result.alpha < result.ci_high
        widths.append(result.ci_high - result.ci_low)
    assert widths[0] > widths[1] > widths[2]
    # The width shrinks like 1/sqrt(n): ten times the sample, about a third of the width (the
    # width also scales with 1 - alpha, which varies from sample to sample).
    assert widths[2] / widths[1] == pytest.approx(1 / math.sqrt(10), rel=0.2)
    assert cronbach_alpha(one_factor_sample(20_000, seed=7)).ci_low < POPULATION_ALPHA


def test_feldt_interval_agrees_with_pingouins_rounded_interval():
    sample = one_factor_sample(300, seed=3)
    ours = cronbach_alpha(sample, ci=0.90)
    _, theirs = pingouin.cronbach_alpha(data=sample, ci=0.90)
    assert ours.ci_low == pytest.approx(theirs[0], abs=5e-4)
    assert ours.ci_high == pytest.approx(theirs[1], abs=5e-4)


def test_a_respondent_with_one_missing_item_still_counts_pairwise():
    sample = one_factor_sample(40, seed=11)
    sample.loc[5, "q3"] = np.nan
    sample.loc[9, :] = np.nan  # answered nothing: informs no covariance

    pairwise = cronbach_alpha(sample)
    listwise = cronbach_alpha(sample, missing="listwise")

    assert (pairwise.n, pairwise.n_complete) == (39, 38)
    assert listwise.n == 38
    # Pairwise alpha is alpha of the pairwise-complete covariance matrix (R psych, use="pairwise").
    answered = sample.drop(index=9)
    expected = alpha_from_covariance(answered.cov().to_numpy())
    assert pairwise.alpha == pytest.approx(expected, abs=1e-12)
    assert pairwise.alpha != pytest.approx(listwise.alpha, abs=1e-6)


def test_alpha_rejects_text_answers_and_a_single_item():
    with pytest.raises(ValueError, match="numeric"):
        cronbach_alpha(pd.DataFrame({"a": ["1", "2"], "b": [1, 2]}))
    with pytest.raises(ValueError, match="two items"):
        cronbach_alpha(pd.DataFrame({"a": [1, 2, 3]}))


# --- omega -----------------------------------------------------------------------------------


def test_omega_of_an_exact_one_factor_covariance_is_that_models_omega():
    fit = one_factor_fit(pd.DataFrame(POPULATION_COV))
    assert fit.omega == pytest.approx(POPULATION_OMEGA, abs=1e-4)
    np.testing.assert_allclose(fit.loadings, LOADINGS, atol=1e-4)
    np.testing.assert_allclose(fit.uniquenesses, UNIQUENESSES, atol=1e-4)
    assert fit.converged and not fit.heywood


def test_omega_uses_the_covariance_metric_and_is_invariant_to_item_rescaling():
    # Rescaling item j by s_j rescales its loading by s_j and its uniqueness by s_j^2.
    scales = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 1.5])
    cov = POPULATION_COV * np.outer(scales, scales)
    lam, psi = LOADINGS * scales, UNIQUENESSES * scales**2
    expected = lam.sum() ** 2 / (lam.sum() ** 2 + psi.sum())
    assert one_factor_fit(pd.DataFrame(cov)).omega == pytest.approx(expected, abs=1e-4)
    assert expected != pytest.approx(POPULATION_OMEGA, abs=1e-3)


def test_omega_on_a_large_one_factor_sample_recovers_the_population_omega():
    n = 20_000
    result = mcdonald_omega(one_factor_sample(n, seed=99))
    # Omega's sampling error is of the same order as alpha's (both are ratios of variance
    # components of the same total); four alpha standard errors is a generous bound.
    tolerance = 4 * standard_error_of_alpha(POPULATION_OMEGA, n, K)
    assert result.omega == pytest.approx(POPULATION_OMEGA, abs=tolerance)
    np.testing.assert_allclose(result.loadings, LOADINGS, atol=0.05)
    assert (result.n, result.k) == (n, K)


def test_omega_exceeds_alpha_when_loadings_differ():
    # Alpha is a lower bound of reliability for congeneric items; omega is the reliability.
    assert POPULATION_OMEGA > POPULATION_ALPHA
    sample = one_factor_sample(20_000, seed=5)
    assert mcdonald_omega(sample).omega > cronbach_alpha(sample).alpha


def test_omega_needs_three_items():
    with pytest.raises(ValueError, match="three items"):
        mcdonald_omega(one_factor_sample(100, seed=1)[["q1", "q2"]])


# --- item-total ------------------------------------------------------------------------------


def test_corrected_item_total_correlation_is_the_correlation_with_the_other_items_sum():
    sample = one_factor_sample(500, seed=2)
    table = item_total_correlations(sample)
    for item in sample.columns:
        rest = sample.drop(columns=item)
        assert table.at[item, "r_corrected"] == pytest.approx(
            np.corrcoef(sample[item], rest.sum(axis=1))[0, 1], abs=1e-12
        )
        assert table.at[item, "alpha_if_deleted"] == pytest.approx(
            pingouin.cronbach_alpha(rest)[0], abs=1e-12
        )
        assert table.at[item, "n"] == 500


def test_item_total_reports_each_items_own_n_under_missing_answers():
    sample = one_factor_sample(50, seed=4)
    sample.loc[[1, 2], "q1"] = np.nan
    table = item_total_correlations(sample)
    assert table.at["q1", "n"] == 48
    assert table.at["q2", "n"] == 50


# --- ICC -------------------------------------------------------------------------------------

TINY = pd.DataFrame(
    {"pid": ["a", "a", "b", "b", "c", "c"], "wave": [1, 2] * 3, "score": [1, 3, 4, 6, 7, 8]}
)


def test_icc1_matches_a_hand_computed_one_way_anova():
    # Subject means 2, 5, 7.5; grand mean 29/6. SS_between = 2 * sum((mean - 29/6)^2) = 91/3 on
    # 2 df, MS_between = 91/6. SS_within = 1+1+1+1+0.25+0.25 = 4.5 on 3 df, MS_within = 3/2.
    # ICC(1) = (MSB - MSW) / (MSB + (k - 1) MSW) = (91/6 - 9/6) / (91/6 + 9/6) = 0.82.
    # Wave means 4 and 17/3: SS_waves = 25/6, so MS_error = (4.5 - 25/6) / 2 = 1/6 and
    # ICC(3,1) = (91/6 - 1/6) / (91/6 + 1/6) = 90/92; ICC(2,1) adds k (MSJ - MSE) / n: 15/18.
    result = icc_repeated(TINY, subject="pid", wave="wave", score="score")
    assert result.icc("ICC(1,1)") == pytest.approx(0.82, abs=1e-12)
    assert result.icc("ICC(C,1)") == pytest.approx(90 / 92, abs=1e-12)
    assert result.icc("ICC(A,1)") == pytest.approx(15 / 18, abs=1e-12)
    assert (result.n_subjects, result.n_waves, result.n_dropped, result.reason) == (3, 2, 0, None)


def test_icc_recovers_between_over_total_variance_of_a_generated_design():
    between, within, subjects, waves = 2.0, 1.0, 3_000, 4
    rng = np.random.default_rng(2024)
    true_level = rng.normal(50, math.sqrt(between), subjects)
    long = pd.DataFrame(
        {
            "pid": np.repeat(np.arange(subjects), waves),
            "wave": np.tile(np.arange(waves), subjects),
        }
    )
    long["score"] = true_level[long["pid"]] + rng.normal(0, math.sqrt(within), len(long))
    result = icc_repeated(long, subject="pid", wave="wave", score="score")
    # SE of ICC(1) for n=3000, k=4, rho=2/3 is about 0.008; allow 4 SE.
    assert result.icc("ICC(1,1)") == pytest.approx(between / (between + within), abs=0.03)
    row = result.table.set_index("Type").loc["ICC(1,1)"]
    assert row["ci_low"] < between / (between + within) < row["ci_high"]


def test_icc_drops_subjects_missing_a_wave_and_says_so():
    unbalanced = pd.concat(
        [
            TINY,
            pd.DataFrame({"pid": ["d", "e", "e"], "wave": [1, 1, 2], "score": [5, 2, np.nan]}),
        ],
        ignore_index=True,
    )
    result = icc_repeated(unbalanced, subject="pid", wave="wave", score="score")
    assert result.n_dropped == 2
    assert set(result.dropped) == {"d", "e"}
    assert "every wave" in result.reason
    assert result.icc("ICC(1,1)") == pytest.approx(0.82, abs=1e-12)


def test_icc_refuses_two_rows_for_the_same_subject_and_wave():
    doubled = pd.concat([TINY, TINY.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="a/1"):
        icc_repeated(doubled, subject="pid", wave="wave", score="score")


# --- per wave and subscale -------------------------------------------------------------------


def agreement_instrument() -> Instrument:
    """Two three-item subscales on a 1-5 scale; item c3 is reverse-keyed; a total over both."""
    labels = ["Strongly disagree", "Disagree", "Neutral", "Agree", "Strongly agree"]
    return Instrument.model_validate(
        {
            "id": "test_agree",
            "name": "Test agreement scale",
            "short_name": "TAS",
            "version": "1",
            "citation": "Generated for tests.",
            "licence": {"name": "CC0", "commercial_use": "allowed"},
            "wording": {"status": "shipped", "source": "tests"},
            "languages": ["en"],
            "response_scales": {
                "agree5": {
                    "min": 1,
                    "max": 5,
                    "anchors": [{"value": v + 1, "label": {"en": t}} for v, t in enumerate(labels)],
                }
            },
            "items": [
                {"id": i, "text": {"en": f"Item {i}"}, "scale": "agree5", "reverse": i == "c3"}
                for i in ("a1", "a2", "a3", "c1", "c2", "c3")
            ],
            "scores": [
                {"id": "a", "label": {"en": "A"}, "items": ["a1", "a2", "a3"], "method": "mean"},
                {"id": "c", "label": {"en": "C"}, "items": ["c1", "c2", "c3"], "method": "mean"},
                {"id": "total", "label": {"en": "T"}, "kind": "total", "scores": ["a", "c"]},
                {"id": "total_x10", "label": {"en": "T"}, "transform": {"of": "total"}},
            ],
            "sms": {"suitable": True},
        }
    )


def likert_responses(n: int, seed: int) -> pd.DataFrame:
    """Two waves of 1-5 answers driven by one factor; c3 is worded the other way round."""
    rng = np.random.default_rng(seed)
    frames = []
    for wave in (1, 2):
        factor = rng.standard_normal((n, 1))
        latent = factor * np.array([0.9, 0.8, 0.7, 0.8, 0.7, -0.8]) + rng.standard_normal((n, 6))
        answers = np.clip(np.rint(3 + latent), 1, 5).astype(int)
        frame = pd.DataFrame(answers, columns=["a1", "a2", "a3", "c1", "c2", "c3"])
        frames.append(frame.assign(pid=np.arange(n), wave=wave))
    return pd.concat(frames, ignore_index=True)


def pick(table: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows of a tidy reliability table matching every column == value given."""
    mask = np.logical_and.reduce([table[column] == value for column, value in where.items()])
    return table[mask]


def test_reliability_by_wave_reverse_keys_items_and_matches_pingouin_per_subscale():
    data = likert_responses(400, seed=8)
    table = reliability_by_wave(data, agreement_instrument(), subject="pid", wave="wave")

    for wave in (1, 2):
        answers = data[data["wave"] == wave].copy()
        answers["c3"] = 6 - answers["c3"]  # the published reverse key on a 1-5 scale
        for score, items in (("a", ["a1", "a2", "a3"]), ("c", ["c1", "c2", "c3"])):
            row = pick(table, wave=wave, score=score, statistic="alpha")
            assert row["value"].item() == pytest.approx(
                pingouin.cronbach_alpha(answers[items])[0], abs=1e-12
            )
            assert (row["n"].item(), row["k"].item()) == (400, 3)
        total = pick(table, wave=wave, score="total", statistic="alpha")
        assert total["k"].item() == 6
        assert total["value"].item() == pytest.approx(
            pingouin.cronbach_alpha(answers[["a1", "a2", "a3", "c1", "c2", "c3"]])[0], abs=1e-12
        )
    # A transform only rescales a score; it has no reliability of its own.
    assert "total_x10" not in set(table["score"])
    assert {"alpha", "omega", "r_corrected", "alpha_if_deleted"} <= set(table["statistic"])


def test_reliability_by_wave_keeps_respondents_with_one_missing_item():
    data = likert_responses(100, seed=12).astype({"a2": float})
    data.loc[(data["wave"] == 1) & (data["pid"] == 0), "a2"] = np.nan
    table = reliability_by_wave(data, agreement_instrument(), subject="pid", wave="wave")
    alpha_a = pick(table, wave=1, score="a", statistic="alpha")
    assert (alpha_a["n"].item(), alpha_a["n_complete"].item()) == (100, 99)
    a1 = pick(table, wave=1, score="a", statistic="r_corrected", item="a1")
    a2 = pick(table, wave=1, score="a", statistic="r_corrected", item="a2")
    assert (a1["n"].item(), a2["n"].item()) == (100, 99)


def test_reliability_by_wave_rejects_answers_off_the_scale():
    data = likert_responses(20, seed=1)
    data.loc[3, "c2"] = 7
    with pytest.raises(
        ValueError, match=r"row 3: item c2: 7 is not on its response scale \(1 to 5"
    ):
        reliability_by_wave(data, agreement_instrument(), subject="pid", wave="wave")
