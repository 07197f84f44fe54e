"""Linear mixed-effects models: `fit_lmm` and its result, `LmmResult`.

One grouping factor, random intercepts and any number of random slopes, REML or ML, with two
engines that give the same answers:

- ``fast`` (default): `analysis.lmm_fast`, lme4's profiled-deviance formulation on batched
  per-group linear algebra;
- ``statsmodels``: `analysis.lmm_statsmodels`, statsmodels' MixedLM with the L-BFGS method and
  lme4's convergence rule applied to its own score, the reference path.

Warnings are collected, checked and explained, never silenced: each fit is tested for a
singular random-effects covariance (lme4's `isSingular`), statsmodels' own warnings are passed
on with what the check found, and a fit that did not converge says so.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from . import lmm_fast, lmm_statsmodels

ENGINES = ("fast", "statsmodels")
# lme4's isSingular tolerance: a diagonal entry of the relative covariance factor below it.
SINGULAR_TOL = 1e-4
FIXED_COLUMNS = ("estimate", "se", "ci_lower", "ci_upper", "statistic", "df", "p")


@dataclass
class LmmResult:
    """A fitted linear mixed model.

    `fixed` is a DataFrame indexed by term (patsy's names) with the columns `FIXED_COLUMNS`:
    Wald z statistics and normal p-values and CIs, `df` NaN (as statsmodels reports them),
    unless the fit used Satterthwaite's df (REML, fast engine), when they are t statistics.
    `random_cov` is the covariance matrix of the random effects, indexed by their terms;
    `loglik` is the REML criterion's log-likelihood for REML fits (lme4's `logLik`), the
    log-likelihood for ML fits. AIC and BIC are given for ML fits only: REML likelihoods of
    models with different fixed effects are not comparable.
    """

    formula: str
    re_formula: str
    groups: str
    reml: bool
    engine: str
    fixed: pd.DataFrame
    cov_fixed: pd.DataFrame
    random_cov: pd.DataFrame
    residual_var: float
    loglik: float
    n_obs: int
    n_groups: int
    n_params: int
    converged: bool
    singular: bool
    aic: float | None = None
    bic: float | None = None
    df_method: str = "wald"
    conf_level: float = 0.95
    warnings: list[str] = field(default_factory=list)
    # sha256 of the outcome and group of every modelled row, in order: a likelihood-ratio test
    # needs both models fitted to the same rows, not just as many.
    rows_fingerprint: str = field(default="", repr=False)
    # Satterthwaite's df of a contrast vector over the fixed effects (REML fits of the fast
    # engine; None otherwise). Used by `analysis.inference.contrasts`; not part of to_dict().
    satterthwaite_df: Callable[[np.ndarray], float] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def params(self) -> pd.Series:
        return self.fixed["estimate"]

    @property
    def random_sd(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.random_cov)), index=self.random_cov.index)

    @property
    def random_corr(self) -> pd.DataFrame:
        sd = self.random_sd.to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = self.random_cov.to_numpy() / np.outer(sd, sd)
        return pd.DataFrame(corr, index=self.random_cov.index, columns=self.random_cov.columns)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (NaN becomes None)."""

        def number(value):
            value = float(value)
            return None if math.isnan(value) else value

        terms = list(self.random_cov.index)
        return {
            "formula": self.formula,
            "re_formula": self.re_formula,
            "groups": self.groups,
            "criterion": "REML" if self.reml else "ML",
            "engine": self.engine,
            "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "fixed_effects": {
                term: {column: number(row[column]) for column in FIXED_COLUMNS}
                for term, row in self.fixed.iterrows()
            },
            "df_method": self.df_method,
            "conf_level": self.conf_level,
            "random_effects": {
                "group": self.groups,
                "terms": terms,
                "covariance": [[number(v) for v in row] for row in self.random_cov.to_numpy()],
                "variance": {t: number(self.random_cov.loc[t, t]) for t in terms},
                "sd": {t: number(v) for t, v in self.random_sd.items()},
            },
            "residual_variance": number(self.residual_var),
            "loglik": number(self.loglik),
            "aic": None if self.aic is None else number(self.aic),
            "bic": None if self.bic is None else number(self.bic),
            "n_params": self.n_params,
            "converged": self.converged,
            "singular": self.singular,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Design:
    """The model's matrices on the complete rows, and their names."""

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    codes: np.ndarray  # integer group code per row
    fixed_names: list[str]
    random_names: list[str]
    n_dropped: int


def _as_categories(data: pd.DataFrame, formulas: tuple[str, ...]) -> pd.DataFrame:
    """The data with each text column the formulas name as a pandas Categorical of the levels
    present. Patsy reads the same levels in the same (sorted) order either way, but sniffs
    text columns value by value in Python: on 300,000 rows that takes seconds, this takes
    milliseconds. Unused levels are dropped so that they cannot become all-zero columns."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", " ".join(formulas))) & set(data.columns)
    converted = {}
    for name in names:
        column = data[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            converted[name] = column.cat.remove_unused_categories()
        elif column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            converted[name] = column.astype("category")
    return data.assign(**converted) if converted else data


def build_design(data: pd.DataFrame, formula: str, groups: str, re_formula: str | None) -> Design:
    """Patsy design matrices on the rows complete for every variable the model uses.

    `re_formula` is a right-hand side such as "~week" (intercept and slope; "~0 + week" for a
    slope alone); None means a random intercept. Unknown columns raise ValueError.
    """
    if groups not in data.columns:
        raise ValueError(f"unknown grouping column {groups!r}")
    re_formula = re_formula or "~1"
    data = data.reset_index(drop=True)  # rows are matched by index below: make it unique
    try:
        frame = _as_categories(data, (formula, re_formula))
        y, X = patsy.dmatrices(formula, frame, NA_action="drop", return_type="dataframe")
        Z = patsy.dmatrix(re_formula, frame, NA_action="drop", return_type="dataframe")
        keep = X.index.intersection(Z.index).intersection(data.index[data[groups].notna()])
        if len(keep) < len(data):
            # Build again on the complete rows alone, so that factor levels are those of the
            # data actually modelled.
            frame = _as_categories(data.loc[keep], (formula, re_formula))
            y, X = patsy.dmatrices(formula, frame, return_type="dataframe")
            Z = patsy.dmatrix(re_formula, frame, return_type="dataframe")
    except patsy.PatsyError as exc:
        missing = re.search(r"NameError: name '([^']+)' is not defined", str(exc))
        if missing:
            raise ValueError(
                f"unknown column {missing.group(1)!r} in the model; the data have: "
                f"{', '.join(map(str, data.columns))}"
            ) from None
        raise ValueError(f"cannot build the model matrices: {exc}") from exc
    if y.shape[1] != 1:
        raise ValueError(f"the outcome of {formula!r} must be one numeric column")
    if len(keep) == 0:
        raise ValueError("no rows are complete for the model's variables")
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        raise ValueError(f"the fixed-effects design of {formula!r} is rank deficient")
    codes, _ = pd.factorize(data.loc[keep, groups], sort=True)
    return Design(
        y=y.to_numpy()[:, 0],
        X=X.to_numpy(),
        Z=Z.to_numpy(),
        codes=codes,
        fixed_names=list(X.columns),
        random_names=list(Z.columns),
        n_dropped=len(data) - len(keep),
    )


def relative_cholesky_diagonal(cov: np.ndarray, residual_var: float) -> np.ndarray:
    """Diagonal of the lower Cholesky factor of cov / residual_var, i.e. lme4's theta diagonal.

    Entry k is the standard deviation of random effect k given the earlier ones, relative to
    the residual SD. A semi-definite covariance gives zeros rather than an error.
    """
    A = np.asarray(cov, dtype=float) / residual_var
    q = A.shape[0]
    L = np.zeros_like(A)
    for k in range(q):
        d = A[k, k] - L[k, :k] @ L[k, :k]
        L[k, k] = math.sqrt(d) if d > 0 else 0.0
        for i in range(k + 1, q):
            L[i, k] = (A[i, k] - L[i, :k] @ L[k, :k]) / L[k, k] if L[k, k] > 0 else 0.0
    return np.diag(L)


def singularity_warnings(cov: np.ndarray, residual_var: float, names: list[str]) -> list[str]:
    """lme4's isSingular, explained: which random effect is degenerate and what it means."""
    diag = relative_cholesky_diagonal(cov, residual_var)
    notes = []
    for k, value in enumerate(diag):
        if value >= SINGULAR_TOL:
            continue
        variance = float(cov[k, k])
        if variance / residual_var < SINGULAR_TOL**2 or k == 0:
            what = (
                f"the variance of the random effect {names[k]!r} is estimated at "
                f"{variance:.3g}, zero relative to the residual variance {residual_var:.3g}"
            )
        else:
            what = (
                f"the random effect {names[k]!r} is a linear function of "
                f"{', '.join(repr(n) for n in names[:k])} (correlation +/-1)"
            )
        notes.append(
            f"boundary (singular fit): {what}. The estimate lies on the boundary of the "
            "parameter space (lme4's isSingular, relative Cholesky diagonal "
            f"{value:.2g} < {SINGULAR_TOL:g}): the data show no variation between groups in "
            "this effect beyond what the residual explains. Fixed effects remain estimable, "
            "but consider the simpler random-effects structure, and note that a likelihood-"
            "ratio test of this variance has a boundary (chi-bar-squared) null distribution."
        )
    return notes


def _statsmodels_fit(design: Design, reml: bool, df_method: str):
    return lmm_statsmodels.fit(design.y, design.X, design.Z, design.codes, reml)


def _fast_fit(design: Design, reml: bool, df_method: str):
    cp = lmm_fast.CrossProducts.from_arrays(design.y, design.X, design.Z, design.codes)
    fit = lmm_fast.fit_profiled(cp, reml=reml)
    messages = []
    if not fit.converged:
        messages.append(
            f"L-BFGS-B stopped ({fit.message}) with deviance gradient "
            f"{np.array2string(fit.gradient, precision=3)} in theta"
        )
    df_of = functools.partial(lmm_fast.satterthwaite_df, cp, fit) if reml else None
    df = np.array([df_of(c) for c in np.eye(cp.p)]) if df_method == "satterthwaite" else None
    return {
        "beta": fit.profile.beta,
        "cov_beta": fit.cov_beta,
        "cov_random": fit.cov_random,
        "residual_var": fit.sigma2,
        "loglik": -fit.deviance / 2,
        "converged": fit.converged,
        "messages": messages,
        "df": df,
        "satterthwaite_df": df_of,
    }


def _explain(messages: list[str], singular: bool, engine: str) -> list[str]:
    notes = []
    for message in messages:
        if "boundary" in message.lower():
            verdict = (
                "confirmed: the singularity check below finds a degenerate random effect"
                if singular
                else "not confirmed: the singularity check finds every random effect's "
                "relative SD above the tolerance; statsmodels raises this whenever a variance "
                "is below 0.01 on the outcome's scale, which is not in itself a boundary"
            )
            notes.append(f"{engine}: {message} -- {verdict}")
        else:
            notes.append(f"{engine}: {message}")
    return notes


def fit_lmm(
    data: pd.DataFrame,
    formula: str,
    groups: str,
    re_formula: str | None = None,
    reml: bool = True,
    engine: str = "fast",
    df_method: str = "wald",
    conf_level: float = 0.95,
) -> LmmResult:
    """Fit `formula` with random effects `re_formula` (default: intercept) by `groups`.

    Rows with a missing value in any variable of the model are left out (reported in the
    warnings). `df_method="satterthwaite"` (REML fits, fast engine) gives lmerTest's
    Satterthwaite denominator df and t-based p-values and CIs; the default is Wald z.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if df_method not in ("wald", "satterthwaite"):
        raise ValueError(f"unknown df_method {df_method!r}; choose wald or satterthwaite")
    if df_method == "satterthwaite" and (engine != "fast" or not reml):
        raise ValueError("Satterthwaite df are available for REML fits with the fast engine")
    design = build_design(data, formula, groups, re_formula)
    fitter = _fast_fit if engine == "fast" else _statsmodels_fit
    raw = fitter(design, reml, df_method)

    cov_random, residual_var = raw["cov_random"], raw["residual_var"]
    singular_notes = singularity_warnings(cov_random, residual_var, design.random_names)
    notes = []
    if design.n_dropped:
        notes.append(f"data: {design.n_dropped} rows with missing values were left out")
    if not raw["converged"]:
        notes.append(
            f"convergence: the {engine} optimiser did not converge; the estimates may not be "
            "the maximum of the likelihood and should not be reported as such"
        )
    notes += _explain(raw["messages"], bool(singular_notes), engine)
    notes += singular_notes

    beta, cov_beta = raw["beta"], raw["cov_beta"]
    se = np.sqrt(np.diag(cov_beta))
    stat = beta / se
    df = raw.get("df")
    if df is None:
        df = np.full(len(beta), np.nan)
        p = 2 * stats.norm.sf(np.abs(stat))
        crit = np.full(len(beta), stats.norm.ppf(0.5 + conf_level / 2))
    else:
        p = 2 * stats.t.sf(np.abs(stat), df)
        crit = stats.t.ppf(0.5 + conf_level / 2, df)
    fixed = pd.DataFrame(
        {
            "estimate": beta,
            "se": se,
            "ci_lower": beta - crit * se,
            "ci_upper": beta + crit * se,
            "statistic": stat,
            "df": df,
            "p": p,
        },
        index=pd.Index(design.fixed_names, name="term"),
    )
    q, n_fixed = len(design.random_names), len(design.fixed_names)
    n_params = n_fixed + q * (q + 1) // 2 + 1
    n_obs = len(design.y)
    loglik = raw["loglik"]
    return LmmResult(
        formula=formula,
        re_formula=re_formula or "~1",
        groups=groups,
        reml=reml,
        engine=engine,
        fixed=fixed,
        cov_fixed=pd.DataFrame(cov_beta, index=design.fixed_names, columns=design.fixed_names),
        random_cov=pd.DataFrame(cov_random, index=design.random_names, columns=design.random_names),
        residual_var=residual_var,
        loglik=loglik,
        n_obs=n_obs,
        n_groups=int(design.codes.max()) + 1,
        n_params=n_params,
        converged=raw["converged"],
        singular=bool(singular_notes),
        aic=None if reml else -2 * loglik + 2 * n_params,
        bic=None if reml else -2 * loglik + math.log(n_obs) * n_params,
        df_method=df_method,
        conf_level=conf_level,
        warnings=notes,
        satterthwaite_df=raw.get("satterthwaite_df"),
        rows_fingerprint=hashlib.sha256(
            design.y.tobytes() + design.codes.astype(np.int64).tobytes()
        ).hexdigest(),
    )
