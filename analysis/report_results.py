"""What the report shows of the preregistered analysis: `run_plan`'s results, plus the rows.

The report and its replication bundle need, besides `analysis.plan.PlanResults`, the exact
rows each model of the main analysis was fitted to (the bundle's `primary_model_data.csv`).
`run_plan` takes the fitting function as a parameter, so the rows are recorded by wrapping
`fit_lmm` rather than by repeating the plan's selection of rows here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .mixed import LmmResult, fit_lmm
from .plan import run_plan
from .plan_results import MAIN, ContrastEstimate, PlanResults
from .prereg_lock import read_lock
from .prereg_schema import ModelSpec
from .preregistration import Preregistration


@dataclass
class ModelResult:
    """A model of the main analysis: its specification, what was fitted, and to which rows."""

    spec: ModelSpec
    formula: str  # the fixed part fitted (covariates appended)
    re_formula: str | None  # the random part fitted (differs from the spec after a fallback)
    fit: LmmResult | None  # None when every attempt failed (a deviation says why)
    rows: pd.DataFrame
    fallback: str = ""


@dataclass
class ReportResults:
    plan: PlanResults
    models: dict[str, ModelResult]

    @property
    def lock_status(self) -> str:
        return self.plan.lock_status

    @property
    def confirmatory(self) -> bool:
        return self.plan.confirmatory

    @property
    def prereg_hash(self) -> str:
        """The locked hash when there is a lock, else the file's own."""
        return self.plan.locked_sha256 or self.plan.prereg_sha256

    @property
    def contrasts(self) -> list[ContrastEstimate]:
        """The main analysis's contrasts: the hypotheses' in their order, then the others."""
        contrasts = self.plan.analysis(MAIN).contrasts
        tested = [c for c in contrasts if c.hypothesis]
        return tested + [c for c in contrasts if not c.hypothesis]

    @property
    def deviations(self) -> list[str]:
        return [f"{d.kind}: {d.message}" for d in self.plan.deviations]

    @property
    def warnings(self) -> list[str]:
        return self.plan.warnings

    @property
    def sensitivity(self):
        return [a for a in self.plan.analyses if a.id != MAIN]

    def primary_contrast(self) -> ContrastEstimate:
        """The first hypothesis's contrast: the report's headline estimate."""
        return self.contrasts[0]


def results_for_report(
    prereg: Preregistration, prereg_path: str | Path, data: pd.DataFrame, *, engine: str = "fast"
) -> ReportResults:
    """Run the preregistration at `prereg_path` (with its lock, if any) on `data`."""
    rows_of: dict[int, pd.DataFrame] = {}

    def recording_fit(rows: pd.DataFrame, *args, **kwargs) -> LmmResult:
        fitted = fit_lmm(rows, *args, **kwargs)
        rows_of[id(fitted)] = rows
        return fitted

    plan = run_plan(prereg, data, locked=read_lock(prereg_path), engine=engine, fit=recording_fit)
    models = {}
    for fitted in plan.analysis(MAIN).models:
        models[fitted.model] = ModelResult(
            spec=prereg.model.model(fitted.model),
            formula=fitted.formula,
            re_formula=fitted.re_formula,
            fit=fitted.fit,
            rows=rows_of.get(id(fitted.fit), data.iloc[0:0]),
            fallback=fitted.fallback,
        )
    return ReportResults(plan, models)
