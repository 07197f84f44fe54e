"""Inference on fitted mixed models: likelihood-ratio tests, linear contrasts, multiplicity
corrections and standardised effect sizes.

Everything here works on `analysis.mixed.LmmResult`s; nothing refits a model. Intervals and
p-values of contrasts are Wald (normal) ones by default, like the fixed-effects table's, or
t-based with Satterthwaite's df for REML fits of the fast engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from .mixed import LmmResult

CONTRAST_COLUMNS = ("estimate", "se", "ci_lower", "ci_upper", "statistic", "df", "p")


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """2 (logLik_larger - logLik_smaller) against chi-square with the difference in parameters.

    `p_boundary` is set when the models differ only in random effects: the null value of a
    variance lies on the boundary of its parameter space, so the chi-square p-value is
    conservative; under the null the statistic follows a 50:50 mixture of chi-square with
    df - 1 and df degrees of freedom when one random effect (with its covariances) is added
    (Self & Liang 1987, JASA 82:605-610; Stram & Lee 1994, Biometrics 50:1171-1177).
    """

    statistic: float
    df: int
    p: float
    p_boundary: float | None
    criterion: str
    note: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def likelihood_ratio_test(smaller: LmmResult, larger: LmmResult) -> LikelihoodRatioTest:
    """Test the nested model `smaller` against `larger`, both fitted to the same rows.

    ML fits may differ in fixed and random effects. REML fits may differ only in their random
    effects: REML likelihoods of different fixed effects are of different data (the residual
    contrasts change), which is why lme4's `anova` refits REML models with ML; refit both with
    `reml=False` to compare fixed effects.
    """
    if smaller.reml != larger.reml:
        raise ValueError("both models must be fitted by the same criterion (REML or ML)")
    if (smaller.n_obs, smaller.groups, smaller.rows_fingerprint) != (
        larger.n_obs,
        larger.groups,
        larger.rows_fingerprint,
    ):
        raise ValueError(
            "the models were fitted to different rows or groups "
            f"({smaller.n_obs} vs {larger.n_obs} observations); a likelihood-ratio test "
            "needs the same data"
        )
    fixed_small, fixed_large = list(smaller.fixed.index), list(larger.fixed.index)
    random_small, random_large = list(smaller.random_cov.index), list(larger.random_cov.index)
    if smaller.reml and fixed_small != fixed_large:
        raise ValueError(
            "REML fits with different fixed effects cannot be compared by likelihood ratio: "
            "refit both with reml=False (ML), as lme4's anova does"
        )
    if not (set(fixed_small) <= set(fixed_large) and set(random_small) <= set(random_large)):
        raise ValueError("the smaller model's terms are not a subset of the larger model's")
    df = larger.n_params - smaller.n_params
    if df <= 0:
        raise ValueError("the larger model must have more parameters than the smaller one")
    statistic = 2 * (larger.loglik - smaller.loglik)
    note = ""
    if statistic < 0:
        if statistic < -1e-6 * max(1.0, abs(larger.loglik)):
            raise ValueError(
                f"the larger model's log-likelihood is lower ({larger.loglik:.6g} < "
                f"{smaller.loglik:.6g}): it did not reach its maximum, or the models are not "
                "nested"
            )
        statistic, note = 0.0, "statistic rounded up to 0 (the fits are equal)"
    p = float(stats.chi2.sf(statistic, df))
    p_boundary = None
    added_random = len(random_large) - len(random_small)
    if fixed_small == fixed_large and added_random == 1:
        p_boundary = float(0.5 * stats.chi2.sf(statistic, df) + 0.5 * _chi2_sf(statistic, df - 1))
        note = (note + "; " if note else "") + (
            "the models differ in a random-effect variance, whose null value is on the "
            "boundary: p_boundary uses the 50:50 chi-square mixture"
        )
    return LikelihoodRatioTest(
        statistic=float(statistic),
        df=int(df),
        p=p,
        p_boundary=p_boundary,
        criterion="REML" if larger.reml else "ML",
        note=note,
    )


def _chi2_sf(x: float, df: int) -> float:
    """Chi-square survival with df = 0 meaning the point mass at zero."""
    return float(stats.chi2.sf(x, df)) if df > 0 else float(x <= 0)


def holm(pvalues) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, in the input's order."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini & Hochberg's (1995) step-up adjusted p-values (false discovery rate)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)[::-1]  # largest first
    m = len(p)
    ranks = np.arange(m, 0, -1)
    adjusted = np.minimum.accumulate(p[order] * m / ranks)
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": lambda p: np.asarray(p, float)}


def adjust(pvalues, method: str) -> np.ndarray:
    """Adjusted p-values by `method`: "holm", "bh" (Benjamini-Hochberg) or "none"."""
    try:
        return CORRECTIONS[method](pvalues)
    except KeyError:
        raise ValueError(
            f"unknown correction {method!r}; choose {', '.join(CORRECTIONS)}"
        ) from None


def wald_interval(estimate, se, conf_level: float = 0.95) -> tuple:
    """The normal-theory (Wald) interval estimate +/- z * se."""
    z = stats.norm.ppf(0.5 + conf_level / 2)
    return estimate - z * se, estimate + z * se


def contrasts(
    result: LmmResult,
    weights: dict[str, dict[str, float]],
    conf_level: float = 0.95,
    df_method: str = "wald",
) -> pd.DataFrame:
    """Linear contrasts L beta: for each named row of weights {term: weight}, the estimate,
    its SE sqrt(L C L'), the interval, the statistic, df and the two-sided p-value.

    `df_method="wald"` (default): z, normal p and interval, df NaN. `"satterthwaite"`: t with
    Satterthwaite's df for that contrast, as lmerTest's `contest` (REML fits, fast engine).
    """
    if df_method not in ("wald", "satterthwaite"):
        raise ValueError(f"unknown df_method {df_method!r}; choose wald or satterthwaite")
    if df_method == "satterthwaite" and result.satterthwaite_df is None:
        raise ValueError("Satterthwaite df are available for REML fits with the fast engine")
    terms = list(result.fixed.index)
    rows = {}
    for name, row in weights.items():
        unknown = set(row) - set(terms)
        if unknown:
            raise ValueError(f"contrast {name!r} names unknown terms: {', '.join(sorted(unknown))}")
        L = np.array([row.get(term, 0.0) for term in terms])
        estimate = float(L @ result.params.to_numpy())
        se = float(np.sqrt(L @ result.cov_fixed.to_numpy() @ L))
        statistic = estimate / se
        if df_method == "satterthwaite":
            df = result.satterthwaite_df(L)
            half_width = stats.t.ppf(0.5 + conf_level / 2, df) * se
            p = 2 * stats.t.sf(abs(statistic), df)
            lower, upper = estimate - half_width, estimate + half_width
        else:
            df = float("nan")
            lower, upper = wald_interval(estimate, se, conf_level)
            p = 2 * stats.norm.sf(abs(statistic))
        rows[name] = (estimate, se, lower, upper, statistic, df, p)
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(CONTRAST_COLUMNS))


def _slope_terms(result: LmmResult, factor: str, time: str) -> dict[str, str]:
    """Each non-reference level of `factor` and the patsy term of its slope difference."""
    pattern = re.compile(rf"^(?:C\()?{re.escape(factor)}\)?\[T\.(.+)\]:{re.escape(time)}$")
    terms = {m.group(1): term for term in result.fixed.index if (m := pattern.match(term))}
    if not terms:
        raise ValueError(f"the model has no {factor}-by-{time} interaction terms")
    return terms


def slope_differences(
    result: LmmResult,
    factor: str = "arm",
    time: str = "week",
    reference: str = "reference",
    df_method: str = "wald",
) -> pd.DataFrame:
    """Every pairwise difference in `time` slopes between the levels of `factor` (the arm-by-
    time contrasts of a trial). Patsy's treatment coding makes a level's interaction term its
    slope minus the reference level's; `reference` names that level in the row labels."""
    terms = _slope_terms(result, factor, time)
    weights = {f"{level} - {reference}": {term: 1.0} for level, term in terms.items()}
    for a, b in combinations(sorted(terms), 2):
        weights[f"{b} - {a}"] = {terms[b]: 1.0, terms[a]: -1.0}
    return contrasts(result, weights, df_method=df_method)


def baseline_variance(result: LmmResult, time: str = "week", at: float = 0.0) -> float:
    """The model-implied total variance of the outcome at time `at`: z' Sigma z + sigma^2 with
    z = (1, at) over the random intercept and the random `time` slope."""
    z = []
    for term in result.random_cov.index:
        if term == "Intercept":
            z.append(1.0)
        elif term == time:
            z.append(at)
        else:
            raise ValueError(f"no baseline variance for the random effect {term!r}")
    z = np.array(z)
    return float(z @ result.random_cov.to_numpy() @ z + result.residual_var)


def standardised_slope_difference(
    result: LmmResult, contrast: pd.Series, duration: float, time: str = "week"
) -> dict:
    """Feingold's d for growth models: difference in slopes x duration / baseline SD.

    d = (b_1 - b_0) T / SD_0, where T is the study's duration in units of `time` and
    SD_0 = sqrt(tau_00 + sigma^2) is the model-implied SD of the outcome at time 0 (random-
    intercept variance plus residual variance): the same metric as Cohen's d of the arms'
    difference at the end of the study (Feingold 2009, Psychological Methods 14:43-53). The
    interval scales the contrast's Wald interval by T / SD_0, treating SD_0 as known
    (Feingold 2015, J. Consulting and Clinical Psychology 83:157-168).
    """
    sd = np.sqrt(baseline_variance(result, time=time, at=0.0))
    scale = duration / sd
    return {
        "d": float(contrast["estimate"] * scale),
        "ci_lower": float(contrast["ci_lower"] * scale),
        "ci_upper": float(contrast["ci_upper"] * scale),
        "baseline_sd": float(sd),
        "duration": float(duration),
    }
