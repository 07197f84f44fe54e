"""Running a preregistered analysis plan on a dataset.

    results = run_plan(prereg, data, locked=read_lock(path))
    results.status                 # "confirmatory" only for a locked, unchanged preregistration
    results.to_dict()              # plain data for the report

The plan, in order: exclusion rules (participants, counted by rule and arm); every model fitted
by `analysis.mixed.fit_lmm` on all available rows (missing outcomes are left out row by row,
valid under MAR); every contrast as a Wald estimate of its linear combination; the hypotheses'
p-values (one-sided where a direction is predicted) corrected over the family by Holm or
Benjamini-Hochberg; then each sensitivity analysis (complete cases, per protocol) refitted the
same way; and attrition by arm. Anything that departs from the preregistration is a
`Deviation`: a missing or broken lock, an amendment, a model that needed a fallback (another
engine, or a simpler random part), an analysis that was not preregistered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import stats

from .exports import snapshot_hash
from .mixed import LmmResult, fit_lmm
from .plan_results import (
    MAIN,
    AnalysisResult,
    ContrastEstimate,
    Deviation,
    ModelFit,
    PlanResults,
)
from .plan_rules import apply_rules, attrition_by_arm
from .prereg_lock import LockInfo
from .prereg_schema import CompleteCases, Contrast, ModelSpec
from .prereg_text import describe_rule
from .preregistration import (
    Preregistration,
    PreregistrationError,
    check_against,
    fixed_formula,
    formula_variables,
    with_reference,
)

__all__ = [
    "MAIN",
    "AnalysisResult",
    "ContrastEstimate",
    "Deviation",
    "ModelFit",
    "PlanResults",
    "adjust_p",
    "run_plan",
]

ENGINES = ("fast", "statsmodels")


Fitter = Callable[..., LmmResult]


def run_plan(
    prereg: Preregistration,
    data: pd.DataFrame,
    *,
    locked: LockInfo | None,
    engine: str = "fast",
    extra_models: Sequence[ModelSpec] = (),
    extra_contrasts: Sequence[Contrast] = (),
    fit: Fitter = fit_lmm,
) -> PlanResults:
    """Run `prereg` on `data` (see the module docstring). `locked` is the preregistration's
    lock (`analysis.prereg_lock.read_lock`), None if it has none. `extra_models` and
    `extra_contrasts` are analyses that were not preregistered: they run, are labelled
    exploratory, and are listed as deviations. Raises `PreregistrationError` when the plan does
    not fit the data (a variable, arm, occasion or coefficient it names is missing)."""
    problems = check_against(prereg, data)
    if problems:
        raise PreregistrationError(problems)
    model = prereg.model
    deviations = _lock_deviations(prereg, locked)
    confirmatory = locked is not None and locked.sha256 == prereg.content_hash
    for spec in extra_models:
        deviations.append(Deviation("not_preregistered", f"model {spec.id} was not preregistered"))
    for contrast in extra_contrasts:
        deviations.append(
            Deviation("not_preregistered", f"contrast {contrast.id} was not preregistered")
        )
    kept, excluded = apply_rules(data, model.exclusions, describe_rule)
    runner = _Runner(prereg, confirmatory, engine, fit, deviations)
    runner.preregistered = {c.id for c in model.contrasts}
    specs = [*model.models, *extra_models]
    contrasts = [*model.contrasts, *extra_contrasts]
    description = "all available data (missing at random, likelihood-based)"
    main = runner.analysis(AnalysisResult(MAIN, "main", description, 0), kept, specs, contrasts)
    _test_hypotheses(prereg, main.contrasts, correct=True)
    analyses = [main]
    for entry in model.sensitivity:
        complete = isinstance(entry, CompleteCases)
        rows = kept if complete else apply_rules(kept, entry.rules, describe_rule)[0]
        shell = AnalysisResult(entry.id, entry.kind, entry.description or entry.kind, 0)
        sensitivity = runner.analysis(
            shell, rows, model.models, model.contrasts, complete_cases=complete
        )
        _test_hypotheses(prereg, sensitivity.contrasts, correct=False)
        analyses.append(sensitivity)
    primary = model.model(_primary_model_id(prereg))
    return PlanResults(
        title=model.title,
        status="confirmatory" if confirmatory else "exploratory",
        lock_status=_lock_status(prereg, locked),
        prereg_sha256=prereg.content_hash,
        locked_sha256=None if locked is None else locked.sha256,
        data_sha256=snapshot_hash(data),
        alpha=model.alpha,
        multiplicity=model.multiplicity.method,
        family=list(model.family),
        exclusions=excluded,
        analyses=analyses,
        attrition=attrition_by_arm(data, model.arms.variable, primary.occasions),
        deviations=deviations,
        warnings=runner.warnings,
    )


def _lock_status(prereg: Preregistration, locked: LockInfo | None) -> str:
    if locked is None:
        return "unlocked"
    return "locked" if locked.sha256 == prereg.content_hash else "changed"


def _lock_deviations(prereg: Preregistration, locked: LockInfo | None) -> list[Deviation]:
    if locked is None:
        return [Deviation("lock", "the preregistration is not locked: every result is exploratory")]
    found = []
    if locked.sha256 != prereg.content_hash:
        found.append(
            Deviation(
                "lock",
                f"the preregistration changed after it was locked at "
                f"{locked.locked_at.isoformat()} (locked {locked.sha256[:12]}, analysed "
                f"{prereg.content_hash[:12]}): every result is exploratory",
            )
        )
    chain = [*locked.history, locked]
    for before, after in pairwise(chain):
        found.append(
            Deviation(
                "amendment",
                f"locked at {before.locked_at.isoformat()} by {before.locked_by} "
                f"({before.sha256[:12]}), amended at {after.locked_at.isoformat()} by "
                f"{after.locked_by} ({after.sha256[:12]}): {after.reason}",
            )
        )
    return found


def _primary_model_id(prereg: Preregistration) -> str:
    outcome = prereg.model.outcomes.primary[0]
    for spec in prereg.model.models:
        if outcome in formula_variables(spec.formula)[0]:
            return spec.id
    return prereg.model.models[0].id


class _Runner:
    """Fits models and estimates contrasts for one analysis at a time, collecting deviations
    and the fits' warnings."""

    def __init__(self, prereg, confirmatory, engine, fit, deviations) -> None:
        self.prereg = prereg
        self.confirmatory = confirmatory
        self.engine = engine
        self.fit = fit
        self.deviations = deviations
        self.warnings: list[str] = []
        self.preregistered: set[str] = set()

    def analysis(
        self,
        result: AnalysisResult,
        data: pd.DataFrame,
        specs: Sequence[ModelSpec],
        contrasts: Sequence[Contrast],
        *,
        complete_cases: bool = False,
    ) -> AnalysisResult:
        """Fit `specs` on `data` and estimate `contrasts`, into `result`."""
        model = self.prereg.model
        coded = with_reference(data, model.arms.variable, model.arms.reference)
        used: set[str] = set()
        fits: dict[str, LmmResult | None] = {}
        for spec in specs:
            formula = fixed_formula(model, spec)
            rows = _model_rows(coded, spec)
            if complete_cases:
                rows = _complete_cases(rows, formula, spec)
            used.update(rows["participant"])
            fitted, re_formula, fallback = self._fit(rows, formula, spec, result.id)
            fits[spec.id] = fitted
            result.models.append(
                ModelFit(
                    model=spec.id,
                    analysis=result.id,
                    formula=formula,
                    re_formula=re_formula,
                    groups=spec.groups,
                    n_participants=int(rows[spec.groups].nunique()),
                    fit=fitted,
                    fallback=fallback,
                )
            )
        result.n_participants = len(used)
        for contrast in contrasts:
            preregistered = contrast.id in self.preregistered
            label = "confirmatory" if self.confirmatory and preregistered else "exploratory"
            fit = fits.get(contrast.model)
            absent = sorted(set(contrast.weights) - set(fit.fixed.index)) if fit else []
            if absent:
                # e.g. a sensitivity subset with no one left in an arm: the model has no such
                # coefficient, so the contrast cannot be estimated there. Said, not hidden.
                self.deviations.append(
                    Deviation(
                        "contrast_not_estimable",
                        f"{result.id}: contrast {contrast.id} needs {', '.join(absent)}, "
                        "which the fitted model does not have (no data for that term)",
                    )
                )
                fit = None
            result.contrasts.append(_estimate(contrast, fit, result.id, label))
        return result

    def _fit(self, rows, formula, spec, analysis_id) -> tuple[LmmResult | None, str | None, str]:
        """(fit, random part used, fallback note): the preregistered fit, or the first fallback
        that converges (the other engine, then a random intercept only), each a deviation."""
        where = f"{analysis_id}: model {spec.id}"
        if rows.empty:
            self.deviations.append(Deviation("model_failed", f"{where}: no participants left"))
            return None, spec.re_formula, ""
        other = next(e for e in ENGINES if e != self.engine)
        attempts = [(self.engine, spec.re_formula, ""),
                    (other, spec.re_formula, f"refitted with the {other} engine")]  # fmt: skip
        if spec.re_formula is not None:
            simpler = "refitted with a random intercept only"
            attempts += [(self.engine, None, simpler), (other, None, f"{simpler} ({other})")]
        failures = []
        for engine, re_formula, note in attempts:
            what = f"{engine} engine" + ("" if re_formula else " (random intercept only)")
            try:
                fitted = self.fit(
                    rows, formula, spec.groups, re_formula, reml=spec.reml, engine=engine
                )
            except Exception as exc:  # any failure to fit is reported, never raised past here
                failures.append(f"{what} failed: {exc}")
                continue
            self.warnings += [f"{where}: {w}" for w in fitted.warnings]
            if not fitted.converged:
                failures.append(f"{what} did not converge")
                continue
            if note:
                self.deviations.append(
                    Deviation("model_fallback", f"{where}: {'; '.join(failures)}; {note}")
                )
            return fitted, re_formula, note
        self.deviations.append(Deviation("model_failed", f"{where}: {'; '.join(failures)}"))
        return None, spec.re_formula, ""


def _model_rows(data: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    rows = data if spec.occasions is None else data[data["occasion"].isin(spec.occasions)]
    return rows if spec.max_week is None else rows[rows["week"] <= spec.max_week]


def _complete_cases(rows: pd.DataFrame, formula: str, spec: ModelSpec) -> pd.DataFrame:
    """Participants with every variable of the model observed on every one of their rows."""
    lhs, rhs = formula_variables(formula)
    extra = set.union(*formula_variables(spec.re_formula)) if spec.re_formula else set()
    missing = rows[sorted(lhs | rhs | extra)].isna().any(axis=1)
    incomplete = set(rows.loc[missing, spec.groups])
    return rows[~rows[spec.groups].isin(incomplete)]


def _estimate(contrast: Contrast, fit: LmmResult | None, analysis: str, label: str):
    weights = {name: float(w) for name, w in contrast.weights.items()}
    if fit is None:
        nan = float("nan")
        return ContrastEstimate(
            contrast.id, contrast.model, analysis, weights, nan, nan, nan, nan, nan, nan, label
        )
    names = list(weights)
    w = np.array([weights[n] for n in names])
    estimate = float(w @ fit.fixed.loc[names, "estimate"].to_numpy())
    se = float(math.sqrt(w @ fit.cov_fixed.loc[names, names].to_numpy() @ w))
    statistic = estimate / se
    z = stats.norm.ppf(0.5 + fit.conf_level / 2)
    return ContrastEstimate(
        id=contrast.id,
        model=contrast.model,
        analysis=analysis,
        weights=weights,
        estimate=estimate,
        se=se,
        ci_lower=estimate - z * se,
        ci_upper=estimate + z * se,
        statistic=statistic,
        p=float(2 * stats.norm.sf(abs(statistic))),
        label=label,
    )


def _test_hypotheses(
    prereg: Preregistration, contrasts: list[ContrastEstimate], *, correct: bool
) -> None:
    """Each hypothesis's test p-value (one-sided where a direction is predicted); with
    `correct`, the family's correction and whether each hypothesis is supported at alpha."""
    model = prereg.model
    by_id = {c.id: c for c in contrasts}
    for hypothesis in model.hypotheses:
        c = by_id[hypothesis.contrast]
        c.hypothesis, c.direction = hypothesis.id, hypothesis.direction
        if hypothesis.direction == "greater":
            c.p_test = float(stats.norm.sf(c.statistic))
        elif hypothesis.direction == "less":
            c.p_test = float(stats.norm.cdf(c.statistic))
        else:
            c.p_test = c.p
    if not correct:
        return
    family = [by_id[i] for i in model.family if i in by_id]
    for c in family:
        c.in_family = True
        if c.p_test is None:
            c.p_test = c.p
    adjusted = adjust_p([c.p_test for c in family], model.multiplicity.method)
    for c, value in zip(family, adjusted, strict=True):
        c.p_adjusted = value
    for c in contrasts:
        p = c.p_adjusted if c.p_adjusted is not None else c.p_test
        if c.hypothesis is not None and p is not None and not math.isnan(p):
            c.supported = bool(p < model.alpha)


def adjust_p(p_values: Sequence[float], method: str) -> list[float]:
    """Holm's step-down or Benjamini-Hochberg's step-up adjusted p-values ("none": as given).
    NaN p-values (a model that failed) stay NaN and do not count towards the family size."""
    p = np.asarray(p_values, dtype=float)
    result = p.copy()
    valid = ~np.isnan(p)
    q = p[valid]
    m = len(q)
    if m == 0 or method == "none":
        return [float(v) for v in result]
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "holm":
        steps = np.maximum.accumulate(ranked * (m - np.arange(m)))
    elif method == "bh":
        steps = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"unknown multiplicity correction {method!r}; use holm, bh or none")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(steps, 1.0)
    result[valid] = adjusted
    return [float(v) for v in result]
