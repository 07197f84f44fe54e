"""What running a preregistered plan produced, as plain data (`PlanResults.to_dict()` for
JSON): the analyses with their model fits and contrast estimates, exclusions, attrition, and
every deviation from the preregistration. Built by `analysis.plan.run_plan`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .mixed import LmmResult

MAIN = "main"


@dataclass
class Deviation:
    """A departure from the preregistration; `kind` is lock, amendment, model_fallback,
    model_failed, contrast_not_estimable or not_preregistered."""

    kind: str
    message: str


@dataclass
class ModelFit:
    model: str
    analysis: str
    formula: str
    re_formula: str | None
    groups: str
    n_participants: int
    fit: LmmResult | None
    fallback: str = ""

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "fit"}
        data["fit"] = None if self.fit is None else self.fit.to_dict()
        return data


@dataclass
class ContrastEstimate:
    """A contrast of one model in one analysis. `p` is two-sided; `p_test` is the p-value of
    the hypothesis test (one-sided for a directional hypothesis), `p_adjusted` that p-value
    corrected over the family (main analysis only)."""

    id: str
    model: str
    analysis: str
    weights: dict[str, float]
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    statistic: float
    p: float
    label: str
    hypothesis: str | None = None
    direction: str | None = None
    p_test: float | None = None
    p_adjusted: float | None = None
    supported: bool | None = None
    in_family: bool = False


@dataclass
class AnalysisResult:
    """The main analysis or one sensitivity analysis: who was in it and what was fitted."""

    id: str
    kind: str
    description: str
    n_participants: int
    models: list[ModelFit] = field(default_factory=list)
    contrasts: list[ContrastEstimate] = field(default_factory=list)


@dataclass
class PlanResults:
    title: str
    status: str  # "confirmatory" or "exploratory"
    lock_status: str  # "locked", "changed" or "unlocked"
    prereg_sha256: str
    locked_sha256: str | None
    data_sha256: str
    alpha: float
    multiplicity: str
    family: list[str]
    exclusions: list[dict]
    analyses: list[AnalysisResult]
    attrition: list[dict]
    deviations: list[Deviation]
    warnings: list[str]

    @property
    def confirmatory(self) -> bool:
        return self.status == "confirmatory"

    def analysis(self, analysis_id: str = MAIN) -> AnalysisResult:
        return next(a for a in self.analyses if a.id == analysis_id)

    def contrast(self, contrast_id: str, analysis: str = MAIN) -> ContrastEstimate:
        return next(c for c in self.analysis(analysis).contrasts if c.id == contrast_id)

    def to_dict(self) -> dict:
        """Plain JSON-ready data; NaN becomes None."""
        data = asdict(self)
        data["analyses"] = [
            {
                **{k: v for k, v in asdict(a).items() if k != "models"},
                "models": [m.to_dict() for m in a.models],
            }
            for a in self.analyses
        ]
        return _clean(data)


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value
