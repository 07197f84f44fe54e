"""Power of a preregistration's confirmatory family: each replicate runs the plan itself.

`flourish power --prereg FILE` simulates studies as usual and analyses each with
`analysis.plan.run_plan`, restricted to what the confirmatory family needs (its contrasts, their
models and hypotheses; no sensitivity analyses): the preregistered exclusions, formula with
covariates, random part, occasions, one-sided tests for directional hypotheses and the
multiplicity correction. A replicate supports a hypothesis when its adjusted p-value is below
the preregistration's alpha, so the power reported is the power of the analysis as it will be
run, Holm or BH included.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from .plan import run_plan
from .plan_results import MAIN
from .preregistration import Preregistration
from .simulate import simulate_study
from .simulate_effects import Effects

_TERM = re.compile(r"^(?P<var>\w+)\[T\.(?P<arm>[^\]]+)\](?P<week>:week)?$")
_WEEK_FIRST = re.compile(r"^week:(?P<var>\w+)\[T\.(?P<arm>[^\]]+)\]$")


@dataclass(frozen=True)
class FamilyContrast:
    """A contrast of the confirmatory family and its true value (None if the effects file does
    not determine it: weights on terms other than arm and arm x week)."""

    label: str
    truth: float | None


def family_only(prereg: Preregistration) -> Preregistration:
    """`prereg` cut down to its confirmatory family: those contrasts, their hypotheses and
    models, and no secondary outcomes or sensitivity analyses."""
    model = prereg.model
    family = set(model.family)
    contrasts = tuple(c for c in model.contrasts if c.id in family)
    needed = {c.model for c in contrasts}
    slim = model.model_copy(
        update={
            "contrasts": contrasts,
            "models": tuple(m for m in model.models if m.id in needed),
            "hypotheses": tuple(h for h in model.hypotheses if h.contrast in family),
            "outcomes": model.outcomes.model_copy(update={"secondary": ()}),
            "sensitivity": (),
        }
    )
    return dataclasses.replace(prereg, model=slim)


def family_contrasts(prereg: Preregistration, effects: Effects) -> list[FamilyContrast]:
    """The family's contrasts with their truth from `effects` (on each contrast's outcome)."""
    model = prereg.model
    found = []
    for contrast in (c for c in model.contrasts if c.id in set(model.family)):
        outcome = _outcome(prereg, contrast.model)
        if outcome not in effects.outcomes:
            raise ValueError(
                f"contrast {contrast.id} is on {outcome}, which the effects file does not simulate"
            )
        found.append(
            FamilyContrast(contrast.id, _truth(contrast.weights, outcome, prereg, effects))
        )
    return found


def _outcome(prereg: Preregistration, model_id: str) -> str:
    return prereg.model.model(model_id).formula.split("~")[0].strip()


def _truth(weights, outcome: str, prereg: Preregistration, effects: Effects) -> float | None:
    reference = prereg.model.arms.reference
    total = 0.0
    for term, weight in weights.items():
        match = _TERM.match(term) or _WEEK_FIRST.match(term)
        if match is None or match["var"] != prereg.model.arms.variable:
            return None
        arm, ref = effects.arm_effect(outcome, match["arm"]), effects.arm_effect(outcome, reference)
        slope = "week" in term
        total += weight * ((arm.slope - ref.slope) if slope else (arm.intercept - ref.intercept))
    return total


def plan_replicate(protocol, effects, prereg, found, participants, seed, engine) -> list:
    """(supported, estimate, CI covers the truth) per family contrast for one simulated study;
    None where the model could not be fitted."""
    data = simulate_study(protocol, effects, participants=participants, seed=seed).data
    results = run_plan(prereg, data, locked=None, engine=engine)
    by_id = {c.id: c for c in results.analysis(MAIN).contrasts}
    outcomes: list = []
    for contrast in found:
        estimate = by_id[contrast.label]
        if estimate.p_adjusted is None or math.isnan(estimate.estimate):
            outcomes.append(None)
            continue
        covered = (
            bool(estimate.ci_lower <= contrast.truth <= estimate.ci_upper)
            if contrast.truth is not None
            else None
        )
        outcomes.append((bool(estimate.supported), float(estimate.estimate), covered))
    return outcomes
