"""Power by simulation: how often the preregistered slope contrast would reach significance.

    settings = PowerSettings(sizes=(300, 450), reps=500, seed=1)
    result = run_power(protocol, effects, settings, progress=bar.update)
    print(result.table())

Each replicate simulates a whole study with `analysis.simulate.simulate_study` (the protocol's
allocation, schedule and dropout; the effects file's truth) and fits the primary model,
`outcome ~ C(arm, Treatment(reference)) * week` with a random intercept and week slope per
participant (REML) by `analysis.mixed.fit_lmm`. A replicate rejects when the Wald p-value of the
arm x week term is below alpha. Power is the share of rejections over all replicates; a fit
that raises counts as a non-rejection (and is counted in `failed`), so failures can only lower
the estimate. The Monte-Carlo SE is sqrt(p (1 - p) / reps).

Each fit is small, so BLAS threads cost more than they give (three times slower here on two
cores): the replicates run with BLAS limited to one thread (through threadpoolctl, when it is
installed), and `workers` processes give the parallelism instead.

Replicate r of size index k draws its seed from `SeedSequence([seed, k, r])`, so results do not
depend on the number of workers or the order in which replicates finish.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

import numpy as np

from .mixed import fit_lmm
from .preregistration import Preregistration
from .simulate import simulate_study
from .simulate_effects import Effects


@dataclass(frozen=True)
class PowerSettings:
    sizes: tuple[int, ...]
    reps: int
    seed: int
    alpha: float = 0.05
    outcome: str | None = None  # default: the effects file's primary outcome
    contrast: str | None = None  # "ARM" (vs the control arm) or "ARM-REFERENCE"
    workers: int = 1
    engine: str = "fast"


@dataclass(frozen=True)
class Contrast:
    """The difference in weekly slope between `arm` and `reference`."""

    arm: str
    reference: str
    truth: float

    @property
    def label(self) -> str:
        return f"{self.arm} - {self.reference}"


@dataclass
class PowerRow:
    participants: int
    contrast: str
    true_difference: float | None
    reps: int
    rejections: int
    failed: int
    power: float
    mc_se: float
    mean_estimate: float | None
    coverage: float | None  # share of replicates whose CI held the true difference


@dataclass
class PowerResult:
    outcome: str
    alpha: float
    reps: int
    seed: int
    engine: str
    rows: list[PowerRow] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """The results as a plain-text table, one row per size and contrast."""
        lines = [
            f"outcome {self.outcome}, alpha {self.alpha:g}, {self.reps} replicates per size, "
            f"seed {self.seed}, {self.seconds:.1f} s",
            f"{'n':>6}  {'contrast':<28} {'true':>8} {'power':>6} {'MC SE':>6} "
            f"{'mean est.':>9} {'coverage':>8} {'failed':>6}",
        ]
        for row in self.rows:
            estimate = "" if row.mean_estimate is None else f"{row.mean_estimate:.4g}"
            truth = "" if row.true_difference is None else f"{row.true_difference:.4g}"
            coverage = "" if row.coverage is None else f"{row.coverage:.3f}"
            lines.append(
                f"{row.participants:>6}  {row.contrast:<28} {truth:>8} "
                f"{row.power:>6.3f} {row.mc_se:>6.3f} {estimate:>9} {coverage:>8} "
                f"{row.failed:>6}"
            )
        return "\n".join(lines)


def contrasts(effects: Effects, outcome: str, arms: list[str], spec: str | None) -> list[Contrast]:
    """The contrasts `spec` names: each arm vs the control arm by default, `ARM` for one arm vs
    control, `ARM-REFERENCE` for any pair. ValueError names the arms when one is unknown."""
    if spec is None:
        pairs = [(arm, effects.control_arm) for arm in arms if arm != effects.control_arm]
    else:
        arm, _, reference = spec.partition("-")
        pairs = [(arm.strip(), reference.strip() or effects.control_arm)]
    for arm, reference in pairs:
        for key in (arm, reference):
            if key not in arms:
                raise ValueError(f"no arm '{key}' in the protocol (arms: {', '.join(arms)})")
        if arm == reference:
            raise ValueError(f"a contrast needs two different arms, not '{arm}' twice")
    return [
        Contrast(
            arm,
            ref,
            effects.arm_effect(outcome, arm).slope - effects.arm_effect(outcome, ref).slope,
        )
        for arm, ref in pairs
    ]


def slope_term(arm: str, reference: str) -> str:
    """patsy's name of the arm x week coefficient with `reference` as the baseline arm."""
    return f'C(arm, Treatment("{reference}"))[T.{arm}]:week'


def primary_formula(outcome: str, reference: str) -> str:
    return f'{outcome} ~ C(arm, Treatment("{reference}")) * week'


def one_replicate(protocol, effects, outcome, found, participants, seed, alpha, engine) -> list:
    """(rejected, estimate, CI covers the truth) per contrast for one simulated study; None
    where the fit failed."""
    data = simulate_study(protocol, effects, participants=participants, seed=seed).data
    by_label: dict[str, tuple | None] = {}
    for reference in dict.fromkeys(c.reference for c in found):
        mine = [c for c in found if c.reference == reference]
        try:
            fit = fit_lmm(
                data, primary_formula(outcome, reference), "participant", "~week", engine=engine
            )
        except (ValueError, np.linalg.LinAlgError):
            by_label |= {c.label: None for c in mine}
            continue
        for contrast in mine:
            row = fit.fixed.loc[slope_term(contrast.arm, reference)]
            covered = bool(row["ci_lower"] <= contrast.truth <= row["ci_upper"])
            by_label[contrast.label] = (bool(row["p"] < alpha), float(row["estimate"]), covered)
    return [by_label[c.label] for c in found]


def run_power(
    protocol,
    effects: Effects,
    settings: PowerSettings,
    progress: Callable[[int], None] | None = None,
    prereg: Preregistration | None = None,
) -> PowerResult:
    """Power for each size in `settings.sizes` and each contrast (see the module docstring).

    With `prereg`, each replicate runs that preregistration's confirmatory family through
    `analysis.plan.run_plan` instead (`analysis.power_plan`), at its own alpha and correction.
    """
    if prereg is not None:
        from .power_plan import family_contrasts, family_only, plan_replicate

        if settings.outcome or settings.contrast:
            raise ValueError("with a preregistration, its confirmatory family is what is tested")
        found = family_contrasts(prereg, effects)
        outcome, alpha, replicate = "preregistered family", prereg.model.alpha, plan_replicate
        fixed = (family_only(prereg), found)
    else:
        outcome = settings.outcome or effects.primary
        if outcome not in effects.outcomes:
            raise ValueError(f"no outcome '{outcome}' in the effects file")
        arms = [arm.key for arm in protocol.model.arms]
        found = contrasts(effects, outcome, arms, settings.contrast)
        alpha, replicate = settings.alpha, one_replicate
        fixed = (outcome, found)
    started = time.perf_counter()
    jobs = [
        (k, r, int(np.random.SeedSequence([settings.seed, k, r]).generate_state(1)[0]))
        for k in range(len(settings.sizes))
        for r in range(settings.reps)
    ]
    results: dict[tuple[int, int], list] = {}

    def arguments(k: int, seed: int) -> tuple:
        if prereg is not None:
            return (protocol, effects, *fixed, settings.sizes[k], seed, settings.engine)
        return (protocol, effects, *fixed, settings.sizes[k], seed, alpha, settings.engine)

    if settings.workers == 1:
        with single_threaded_blas():
            for k, r, seed in jobs:
                results[k, r] = replicate(*arguments(k, seed))
                if progress:
                    progress(1)
    else:
        pool = ProcessPoolExecutor(max_workers=settings.workers, initializer=_limit_blas)
        with pool:
            futures = {pool.submit(replicate, *arguments(k, seed)): (k, r) for k, r, seed in jobs}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    progress(1)
    result = PowerResult(outcome, alpha, settings.reps, settings.seed, settings.engine)
    for k, size in enumerate(settings.sizes):
        for index, contrast in enumerate(found):
            outcomes = [results[k, r][index] for r in range(settings.reps)]
            result.rows.append(_summarise(size, contrast, outcomes, settings.reps))
    result.seconds = time.perf_counter() - started
    return result


def single_threaded_blas():
    """A context in which BLAS uses one thread (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _limit_blas() -> None:
    # A worker process lives only for this run: keep the limit for its lifetime.
    single_threaded_blas().__enter__()


def _summarise(size: int, contrast, outcomes: list, reps: int) -> PowerRow:
    fitted = [o for o in outcomes if o is not None]
    covered = fitted and all(o[2] is not None for o in fitted)
    rejections = sum(o[0] for o in fitted)
    power = rejections / reps
    return PowerRow(
        participants=size,
        contrast=contrast.label,
        true_difference=contrast.truth,
        reps=reps,
        rejections=rejections,
        failed=reps - len(fitted),
        power=power,
        mc_se=math.sqrt(power * (1 - power) / reps),
        mean_estimate=float(np.mean([o[1] for o in fitted])) if fitted else None,
        coverage=float(np.mean([o[2] for o in fitted])) if covered else None,
    )
