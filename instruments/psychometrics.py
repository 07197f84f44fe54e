"""Reliability of instrument scores: Cronbach's alpha, McDonald's omega, item-total correlations
and the intraclass correlation of repeated measures, per wave and per subscale.

Missing answers never remove a respondent from the whole analysis. By default every statistic
is computed from the *pairwise* covariance matrix (each covariance from the respondents who
answered both items), as R's `psych::alpha(use = "pairwise")` does, and every result reports how
many respondents it used (`n`) next to how many answered every item (`n_complete`).
`missing="listwise"` restricts a statistic to complete respondents instead.

Omega is computed on the *covariance* metric: the one-factor model is fitted by maximum
likelihood (which is scale-free, so it is fitted to the correlation matrix and its loadings and
uniquenesses are rescaled by the item standard deviations), and omega total is
(sum of loadings)^2 / ((sum of loadings)^2 + sum of uniquenesses), the model-implied share of the
unit-weighted total score's variance that the common factor explains.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .schema import Instrument, Score

Missing = Literal["pairwise", "listwise"]
# Uniquenesses of a correlation matrix below this are a Heywood case (as R's factanal bounds).
_PSI_LOWER = 0.005


@dataclass(frozen=True)
class AlphaResult:
    """Cronbach's alpha with its Feldt confidence interval.

    `n` respondents contributed (answered at least two of the items; with `listwise`, all of
    them); `n_complete` answered every item; `k` is the number of items.
    """

    alpha: float
    ci_low: float
    ci_high: float
    n: int
    k: int
    n_complete: int
    missing: Missing


@dataclass(frozen=True)
class OmegaResult:
    """McDonald's omega total from a one-factor model fitted by maximum likelihood.

    `loadings` and `uniquenesses` are on the covariance metric of the raw items (indexed by
    item); `heywood` is True when a uniqueness hit its lower bound, in which case omega is an
    upper estimate and should be read with care.
    """

    omega: float
    loadings: pd.Series
    uniquenesses: pd.Series
    n: int
    k: int
    n_complete: int
    converged: bool
    heywood: bool
    missing: Missing


@dataclass(frozen=True)
class IccResult:
    """Intraclass correlations of a score measured repeatedly on the same subjects.

    `table` is pingouin's: ICC(1,1), ICC(A,1) (= ICC(2,1)), ICC(C,1) (= ICC(3,1)) and their
    average-measure forms, with F tests and 95% CIs (split into `ci_low`/`ci_high`, rounded by
    pingouin to 2 decimals). The ANOVA needs every subject measured at every wave, so subjects
    lacking a wave are dropped: `n_dropped` says how many, `dropped` which, and `reason` why.
    """

    table: pd.DataFrame
    n_subjects: int
    n_waves: int
    n_dropped: int
    dropped: tuple
    reason: str | None

    def icc(self, kind: str = "ICC(1,1)") -> float:
        """One ICC from the table by its pingouin name, e.g. "ICC(1,1)" or "ICC(A,1)"."""
        return float(self.table.loc[self.table["Type"] == kind, "ICC"].iloc[0])


# --- alpha -----------------------------------------------------------------------------------


def alpha_from_covariance(cov) -> float:
    """Cronbach's alpha from an item covariance matrix: k/(k-1) * (1 - trace(C) / sum(C)).

    Given a correlation matrix this is the standardised alpha.
    """
    matrix = np.asarray(cov, dtype=float)
    k = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape != (k, k) or k < 2:
        raise ValueError("alpha needs a square covariance matrix of at least two items")
    return float(k / (k - 1) * (1 - np.trace(matrix) / matrix.sum()))


def feldt_interval(alpha: float, n: int, k: int, ci: float = 0.95) -> tuple[float, float]:
    """Feldt's (1965; Feldt, Woodruff & Salih 1987) confidence interval for alpha.

    (1 - alpha) follows a scaled F distribution with n-1 and (n-1)(k-1) degrees of freedom.
    """
    tail = (1 - ci) / 2
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * stats.f.isf(tail, df1, df2)
    high = 1 - (1 - alpha) * stats.f.isf(1 - tail, df1, df2)
    return float(low), float(high)


def cronbach_alpha(
    items: pd.DataFrame, *, ci: float = 0.95, missing: Missing = "pairwise"
) -> AlphaResult:
    """Cronbach's alpha of the item columns of `items` (one row per respondent).

    The point estimate is pingouin's (pairwise or listwise covariance, as R's psych). The Feldt
    interval is computed here at full precision (pingouin rounds it) with `n` = respondents who
    contributed; with pairwise missing data it treats them as complete, so it is slightly too
    narrow when many answers are missing.
    """
    data, n_complete = _prepare(items, missing)
    n, k = data.shape
    if n < 2:
        raise ValueError(f"alpha needs at least two respondents; {n} answered two or more items")
    import pingouin  # imported on use: it loads matplotlib and seaborn (seconds at start-up)

    alpha, _ = pingouin.cronbach_alpha(data=data, nan_policy=missing, ci=ci)
    low, high = feldt_interval(alpha, n, k, ci)
    return AlphaResult(float(alpha), low, high, n, k, n_complete, missing)


def item_total_correlations(items: pd.DataFrame, *, missing: Missing = "pairwise") -> pd.DataFrame:
    """Corrected item-total correlations and alpha if the item is deleted, one row per item.

    Each item is correlated with the sum of the *other* items. Both come from the covariance
    matrix (pairwise by default), so a respondent with a missing answer still counts for every
    pair they answered; `n` is the number of respondents who answered the item.
    """
    data, _ = _prepare(items, missing)
    cov = data.cov().to_numpy()
    k = cov.shape[0]
    if k < 3:
        raise ValueError("item-total statistics need at least three items")
    rows = []
    for i, column in enumerate(data.columns):
        others = [j for j in range(k) if j != i]
        covariance_with_rest = cov[i, others].sum()
        variance_of_rest = cov[np.ix_(others, others)].sum()
        rows.append(
            {
                "item": column,
                "r_corrected": covariance_with_rest / np.sqrt(cov[i, i] * variance_of_rest),
                "alpha_if_deleted": alpha_from_covariance(cov[np.ix_(others, others)]),
                "n": int(data[column].notna().sum()),
            }
        )
    return pd.DataFrame(rows).set_index("item")


def _prepare(items: pd.DataFrame, missing: Missing) -> tuple[pd.DataFrame, int]:
    """Numeric items without respondents who answered fewer than two (they inform nothing)."""
    if missing not in ("pairwise", "listwise"):
        raise ValueError(f"missing must be 'pairwise' or 'listwise', not {missing!r}")
    if items.shape[1] < 2:
        raise ValueError("reliability needs at least two items")
    not_numeric = [c for c in items.columns if items[c].dtype.kind not in "biuf"]
    if not_numeric:
        raise ValueError(f"items must be numeric; not numeric: {', '.join(map(str, not_numeric))}")
    data = items.astype(float)
    n_complete = int(data.notna().all(axis=1).sum())
    enough = data.notna().all(axis=1) if missing == "listwise" else data.notna().sum(axis=1) >= 2
    return data[enough], n_complete


# --- omega -----------------------------------------------------------------------------------


def mcdonald_omega(items: pd.DataFrame, *, missing: Missing = "pairwise") -> OmegaResult:
    """McDonald's omega total of the item columns of `items` (see the module docstring)."""
    data, n_complete = _prepare(items, missing)
    fit = one_factor_fit(data.cov())
    return OmegaResult(
        omega=fit.omega,
        loadings=fit.loadings,
        uniquenesses=fit.uniquenesses,
        n=len(data),
        k=data.shape[1],
        n_complete=n_complete,
        converged=fit.converged,
        heywood=fit.heywood,
        missing=missing,
    )


@dataclass(frozen=True)
class FactorFit:
    """A one-factor maximum-likelihood solution on the covariance metric."""

    loadings: pd.Series
    uniquenesses: pd.Series
    converged: bool
    heywood: bool

    @property
    def omega(self) -> float:
        common = self.loadings.abs().sum() ** 2
        return float(common / (common + self.uniquenesses.sum()))


def one_factor_fit(cov: pd.DataFrame) -> FactorFit:
    """Fit one common factor to a covariance matrix by maximum likelihood.

    Jöreskog's method: the loadings are concentrated out, so the discrepancy
    log|Σ| + tr(SΣ⁻¹) - log|S| - p is minimised over the uniquenesses alone (L-BFGS-B, bounded
    as in R's factanal). Needs at least three items: with two, one factor is not identified.
    """
    names = list(cov.columns) if isinstance(cov, pd.DataFrame) else None
    matrix = np.asarray(cov, dtype=float)
    p = matrix.shape[0]
    if p < 3:
        raise ValueError("omega needs at least three items (one factor is not identified by two)")
    if not np.all(np.isfinite(matrix)) or np.any(np.diag(matrix) <= 0):
        raise ValueError("the item covariance matrix has missing or zero variances")
    sd = np.sqrt(np.diag(matrix))
    corr = matrix / np.outer(sd, sd)
    try:
        start = (1 - 0.5 / p) / np.diag(np.linalg.inv(corr))
    except np.linalg.LinAlgError as exc:
        raise ValueError("the item correlation matrix is singular") from exc

    def loadings_for(psi: np.ndarray) -> np.ndarray:
        scale = np.sqrt(psi)
        values, vectors = np.linalg.eigh(corr / np.outer(scale, scale))
        return scale * vectors[:, -1] * np.sqrt(max(values[-1] - 1, 0.0))

    def discrepancy(psi: np.ndarray) -> tuple[float, np.ndarray]:
        scale = np.sqrt(psi)
        values = np.linalg.eigvalsh(corr / np.outer(scale, scale))[:-1]
        if np.any(values <= 0):
            return np.inf, np.zeros_like(psi)
        loading = loadings_for(psi)
        residual = np.outer(loading, loading) + np.diag(psi) - corr
        return float(np.sum(values - np.log(values) - 1)), np.diag(residual) / psi**2

    result = optimize.minimize(
        discrepancy,
        np.clip(start, _PSI_LOWER, 1.0),
        jac=True,
        method="L-BFGS-B",
        bounds=[(_PSI_LOWER, 1.0)] * p,
        options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 1000},
    )
    psi = result.x
    loading = loadings_for(psi)
    # The eigenvector's sign is arbitrary; report a factor most items load positively on.
    if loading.sum() < 0:
        loading = -loading
    index = names if names is not None else range(p)
    return FactorFit(
        loadings=pd.Series(loading * sd, index=index, name="loading"),
        uniquenesses=pd.Series(psi * sd**2, index=index, name="uniqueness"),
        converged=bool(result.success),
        heywood=bool(np.any(psi <= _PSI_LOWER * 1.0001)),
    )


# --- ICC -------------------------------------------------------------------------------------


def icc_repeated(long_df: pd.DataFrame, *, subject: str, wave: str, score: str) -> IccResult:
    """Intraclass correlations of `score` across waves (one row per subject and wave).

    Subjects are pingouin's targets and waves its raters. A subject without a score at every
    wave cannot enter the two-way ANOVA and is dropped, and the result says so. Two rows for the
    same subject and wave are an error, never averaged.
    """
    for column in (subject, wave, score):
        if column not in long_df.columns:
            raise ValueError(f"no column {column!r} in the data")
    duplicated = long_df.duplicated([subject, wave], keep=False)
    if duplicated.any():
        pairs = long_df.loc[duplicated, [subject, wave]].drop_duplicates().head(5)
        listed = ", ".join(f"{s}/{w}" for s, w in pairs.itertuples(index=False))
        raise ValueError(f"more than one row for the same subject and wave: {listed}")
    wide = long_df.pivot(index=subject, columns=wave, values=score)
    incomplete = wide.isna().any(axis=1)
    dropped = tuple(wide.index[incomplete])
    wide = wide[~incomplete]
    if len(wide) < 2 or wide.shape[1] < 2:
        raise ValueError(
            f"an ICC needs at least two subjects measured at the same two or more waves; "
            f"{len(wide)} subjects have a score at all {wide.shape[1]} waves"
        )
    balanced = wide.reset_index().melt(id_vars=subject, var_name=wave, value_name=score)
    with warnings.catch_warnings():
        # pingouin 0.7 calls a pandas API that pandas 3.1 deprecates; nothing for us to act on.
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        import pingouin

        table = pingouin.intraclass_corr(balanced, targets=subject, raters=wave, ratings=score)
    table = table.assign(
        ci_low=[float(ci[0]) for ci in table["CI95"]],
        ci_high=[float(ci[1]) for ci in table["CI95"]],
    ).drop(columns="CI95")
    reason = (
        f"{len(dropped)} subject(s) without a {score!r} at every wave "
        f"({', '.join(map(str, wide.columns))}) were left out: the repeated-measures ANOVA "
        "needs complete subjects"
        if dropped
        else None
    )
    return IccResult(table, len(wide), wide.shape[1], len(dropped), dropped, reason)


# --- per wave and subscale -------------------------------------------------------------------


def score_items(instrument: Instrument, score: Score) -> tuple[str, ...]:
    """The items a score is built from, following scores of scores and transforms."""
    if score.items:
        return score.items
    if score.transform is not None:
        return score_items(instrument, instrument.score(score.transform.of))
    collected: list[str] = []
    for part in score.scores:
        for item in score_items(instrument, instrument.score(part)):
            if item not in collected:
                collected.append(item)
    return tuple(collected)


def reverse_keyed(frame: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """The instrument's item columns with reverse-keyed items reversed on their scale.

    Answers outside an item's response scale are an error naming the row and item, since any
    reliability estimate computed from them would be meaningless.
    """
    missing = [item for item in instrument.item_ids if item not in frame.columns]
    if missing:
        raise ValueError(f"no column for item(s): {', '.join(missing)}")
    keyed = {}
    for item in instrument.items:
        raw = frame[item.id]
        # Blank cells (as read from a CSV as text) are unanswered items, not unreadable ones.
        answered = raw.notna() & ~raw.astype(str).str.strip().eq("")
        values = pd.to_numeric(raw.where(answered), errors="coerce")
        unreadable = answered & values.isna()
        scale = instrument.scale_of(item)
        invalid = values.map(lambda v, scale=scale: pd.notna(v) and not scale.allows(float(v)))
        bad = unreadable | invalid
        if bad.any():
            row = bad.idxmax()
            raise ValueError(
                f"row {row}: item {item.id}: {frame.at[row, item.id]} is not on its response "
                f"scale ({scale.min:g} to {scale.max:g} in steps of {scale.step:g})"
            )
        keyed[item.id] = values.map(scale.reverse) if item.reverse else values
    return pd.DataFrame(keyed, index=frame.index).astype(float)


def reliability_by_wave(
    long_df: pd.DataFrame,
    instrument: Instrument,
    *,
    subject: str,
    wave: str | None,
    missing: Missing = "pairwise",
    ci: float = 0.95,
) -> pd.DataFrame:
    """Alpha, omega and item-total statistics of each score of `instrument`, per wave.

    `long_df` has one row per subject and wave and a column per item (named by item id).
    Reverse-keyed items are reversed first. Scores are those with items of their own or built
    from other scores; transforms are skipped (they rescale a score, which leaves its
    reliability unchanged). Returns a tidy frame: one row per wave, score, statistic and (for
    item statistics) item, with `value`, `ci_low`, `ci_high`, `n` (respondents used),
    `n_complete`, `k` and a `note` where a statistic could not be computed.
    """
    if subject not in long_df.columns:
        raise ValueError(f"no subject column {subject!r} in the data")
    if wave is not None and wave not in long_df.columns:
        raise ValueError(f"no wave column {wave!r} in the data")
    items = reverse_keyed(long_df, instrument)
    waves = [(None, items)] if wave is None else list(items.groupby(long_df[wave], sort=True))
    rows: list[dict] = []
    for wave_value, group in waves:
        for score in instrument.scores:
            if score.transform is not None:
                continue
            block = group[list(score_items(instrument, score))]
            base = {"wave": wave_value, "score": score.id, "k": block.shape[1]}
            rows.extend(_score_rows(block, base, missing, ci))
    columns = ["wave", "score", "statistic", "item", "value", "ci_low", "ci_high", "n"]
    columns += ["n_complete", "k", "note"]
    return pd.DataFrame(rows, columns=columns)


def _score_rows(block: pd.DataFrame, base: dict, missing: Missing, ci: float) -> list[dict]:
    n_complete = int(block.notna().all(axis=1).sum())
    rows = []
    try:
        alpha = cronbach_alpha(block, ci=ci, missing=missing)
        row = {"value": alpha.alpha, "ci_low": alpha.ci_low, "ci_high": alpha.ci_high}
        rows.append({**base, "statistic": "alpha", **row, "n": alpha.n, "n_complete": n_complete})
    except ValueError as exc:
        rows.append({**base, "statistic": "alpha", "n_complete": n_complete, "note": str(exc)})
    try:
        omega = mcdonald_omega(block, missing=missing)
        note = "Heywood case: a uniqueness is at its bound" if omega.heywood else None
        if not omega.converged:
            note = "the one-factor model did not converge"
        rows.append(
            {**base, "statistic": "omega", "value": omega.omega, "n": omega.n}
            | {"n_complete": n_complete, "note": note}
        )
    except ValueError as exc:
        rows.append({**base, "statistic": "omega", "n_complete": n_complete, "note": str(exc)})
    if block.shape[1] >= 3:
        try:
            table = item_total_correlations(block, missing=missing)
        except ValueError as exc:
            rows.append({**base, "statistic": "r_corrected", "note": str(exc)})
        else:
            for item, stat in table.iterrows():
                for name in ("r_corrected", "alpha_if_deleted"):
                    rows.append(
                        {**base, "statistic": name, "item": item, "value": stat[name]}
                        | {"n": int(stat["n"]), "n_complete": n_complete}
                    )
    return rows
