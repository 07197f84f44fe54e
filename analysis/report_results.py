"""What the report shows of the preregistered analysis, in one shape whatever produced it.

The report needs, per model, the fit and the rows it used, and per contrast its estimate, CI,
p-values and whether it is confirmatory; and every deviation. `results_for_report` gets them
from `analysis.plan.run_plan` when that module is installed, and otherwise from a small interim
path here (each model fitted by `fit_lmm` on its occasions after the exclusion rules; Holm or
BH over the family), labelled as such in the report's deviations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .mixed import LmmResult, fit_lmm
from .prereg_lock import verify_lock
from .prereg_schema import CompletedOccasion, MinCompleted, MinObserved, MinUsage, ModelSpec
from .preregistration import Preregistration, fixed_formula, with_reference


@dataclass
class ModelResult:
    spec: ModelSpec
    formula: str  # the fixed part actually fitted (covariates appended)
    fit: LmmResult
    rows: pd.DataFrame  # the rows the model used (before its own missing-value drop)


@dataclass
class ContrastResult:
    id: str
    model: str
    weights: dict[str, float]
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    p: float
    p_adjusted: float | None
    label: str  # "confirmatory" or "exploratory"
    hypothesis: str | None = None


@dataclass
class ReportResults:
    lock_status: str  # "locked", "changed" or "unlocked"
    prereg_hash: str  # the locked hash when locked, else the file's current hash
    models: dict[str, ModelResult]
    contrasts: list[ContrastResult]
    deviations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the fits' own, as fit_lmm gave them
    engine: str = "interim"

    @property
    def confirmatory(self) -> bool:
        return self.lock_status == "locked"

    def primary_contrast(self) -> ContrastResult:
        """The contrast of the first hypothesis (the report's headline estimate)."""
        return self.contrasts[0]


def results_for_report(
    prereg: Preregistration, prereg_path: str | Path, data: pd.DataFrame
) -> ReportResults:
    """The preregistered analysis of `data` (see the module docstring for which path)."""
    check = verify_lock(prereg_path)
    model = prereg.model
    deviations = []
    if check.status == "unlocked":
        deviations.append("the preregistration is not locked: every result is exploratory")
    elif check.status == "changed":
        deviations.append(
            f"the preregistration changed after it was locked (locked {check.lock.sha256[:12]}, "
            f"now {check.current_hash[:12]}): every result is exploratory"
        )
    deviations.append(
        "analysis.plan is not available: results come from the report's interim path "
        "(models and contrasts only, two-sided Wald p-values; no sensitivity analyses)"
    )
    kept = apply_exclusions(data, model.exclusions)
    coded = with_reference(kept, model.arms.variable, model.arms.reference)
    models, warnings = {}, []
    for spec in model.models:
        rows = model_rows(coded, spec)
        formula = fixed_formula(model, spec)
        fit = fit_lmm(rows, formula, spec.groups, spec.re_formula, reml=spec.reml)
        warnings += [f"model {spec.id}: {warning}" for warning in fit.warnings]
        models[spec.id] = ModelResult(spec, formula, fit, rows)
    tested = {h.contrast: h for h in model.hypotheses}
    contrasts = [
        _contrast(c, models[c.model].fit, check.status == "locked" and c.id in model.family)
        for c in model.contrasts
    ]
    for contrast in contrasts:
        hypothesis = tested.get(contrast.id)
        contrast.hypothesis = hypothesis.id if hypothesis else None
    _adjust([c for c in contrasts if c.id in model.family], model.multiplicity.method)
    order = list(tested)
    contrasts.sort(key=lambda c: order.index(c.id) if c.id in tested else len(order))
    prereg_hash = check.lock.sha256 if check.status == "locked" else check.current_hash
    return ReportResults(check.status, prereg_hash, models, contrasts, deviations, warnings)


def model_rows(data: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """The rows of `data` a model reads: its occasions, up to its `max_week`."""
    rows = data
    if spec.occasions is not None:
        rows = rows[rows["occasion"].isin(spec.occasions)]
    if spec.max_week is not None:
        rows = rows[rows["week"] <= spec.max_week]
    return rows


def apply_exclusions(data: pd.DataFrame, rules) -> pd.DataFrame:
    """The rows of participants who meet every rule (rules are in analysis.prereg_schema)."""
    keep = pd.Series(True, index=data["participant"].unique())
    by = data.groupby("participant")
    for rule in rules:
        if isinstance(rule, CompletedOccasion):
            at = data[(data["occasion"] == rule.occasion) & data["completed"]]
            ok = pd.Series(True, index=at["participant"].unique())
        elif isinstance(rule, MinCompleted):
            rows = data if rule.occasions is None else data[data["occasion"].isin(rule.occasions)]
            ok = rows.groupby("participant")["completed"].sum() >= rule.min
        elif isinstance(rule, MinObserved):
            ok = by[rule.variable].count() >= rule.min
        elif isinstance(rule, MinUsage):
            ok = by[rule.variable].sum() >= rule.min
            if rule.arms:
                ok |= ~by["arm"].first().isin(rule.arms)
        keep &= ok.reindex(keep.index, fill_value=False)
    return data[data["participant"].isin(keep[keep].index)]


def _contrast(contrast, fit: LmmResult, confirmatory: bool) -> ContrastResult:
    weights = pd.Series(contrast.weights, dtype=float)
    beta = fit.fixed["estimate"].reindex(weights.index)
    cov = fit.cov_fixed.loc[weights.index, weights.index].to_numpy()
    estimate = float(weights @ beta)
    se = float(np.sqrt(weights.to_numpy() @ cov @ weights.to_numpy()))
    z = stats.norm.ppf(0.5 + fit.conf_level / 2)
    return ContrastResult(
        id=contrast.id,
        model=contrast.model,
        weights=dict(contrast.weights),
        estimate=estimate,
        se=se,
        ci_lower=estimate - z * se,
        ci_upper=estimate + z * se,
        p=float(2 * stats.norm.sf(abs(estimate / se))),
        p_adjusted=None,
        label="confirmatory" if confirmatory else "exploratory",
    )


def _adjust(family: list[ContrastResult], method: str) -> None:
    """Holm or Benjamini-Hochberg adjusted p-values over `family`, in place."""
    if not family:
        return
    p = np.array([c.p for c in family])
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    if method == "holm":
        adjusted[order] = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    elif method == "bh":
        ranked = p[order] * m / np.arange(1, m + 1)
        adjusted[order] = np.minimum(1, np.minimum.accumulate(ranked[::-1])[::-1])
    else:
        adjusted = p
    for contrast, value in zip(family, adjusted, strict=True):
        contrast.p_adjusted = float(value)
