"""Synthetic studies with known effects: the protocol's design, an effects file's truth.

    protocol = load_protocol("examples/protocols/assistant-flourishing-rct.yaml")
    effects = load_effects("examples/effects/assistant-flourishing-rct.yaml", protocol)
    study = simulate_study(protocol, effects, participants=450, seed=7)
    study.data        # the analysis data contract's long format, one row per occasion
    study.truth       # the generating parameters (what `truth.json` holds)
    write_study(study, "out/")

What is taken from the protocol: the arms and their allocation (the protocol's own scheme,
ratio, blocks and strata, run by `study.randomization` in its simulation namespace), the
schedule's baseline, waves and follow-ups with the instruments each administers (EMA prompts
are not part of the dataset), the consent version. Time is the real planner's: an occasion
with a `local_time` is due at that time on the scheduled date, so `days` depends on the time of
day the participant enrolled (uniform over 08:00-22:00).

The model per outcome (docs/simulation.md): for participant i in arm a at `week` t,
y = intercept + slope*t + arm_intercept[a] + arm_slope[a]*t + u0_i + u1_i*t + e, with (u0, u1)
bivariate normal and e normal, then rounded to the score's step and clipped to its bounds
(or, with `items: true`, e spread over item answers scored by the key: analysis.simulate_items).
Dropout time is exponential with the arm's monthly hazard; occasions after it are missed (lost
to follow-up) or cancelled (withdrawn). Intermittent missingness skips single post-baseline
occasions. Everything comes from one `numpy.random.Generator(seed)`: the same protocol,
effects, size and seed give byte-identical files.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from study.enrollment import CODE_ALPHABET, CODE_LENGTH
from study.protocol import Protocol
from study.randomization.design import AllocationDesign, Factor
from study.randomization.sequence import SIMULATION, Ledger, Randomiser
from study.schedule.planning import plan_occasions

from . import simulate_items
from .dataset import USAGE_COLUMNS
from .exports import canonical_csv
from .simulate_effects import Effects, Outcome

DAYS_PER_MONTH = 365.25 / 12
# Enrollment happens at a uniformly random time of day in this range (hours, local time).
ENROLLMENT_HOURS = (8.0, 22.0)
TRUTH_FORMAT = "flourish-simulation-truth/1"


@dataclass(frozen=True)
class ScheduledOccasion:
    """One occasion of the schedule, as an offset from midnight of the enrollment date."""

    schedule_key: str
    wave: int
    kind: str
    instruments: tuple[str, ...]
    offset_days: float  # from local midnight of the enrollment day; 0 for the baseline
    at_enrollment: bool


@dataclass(frozen=True)
class Latent:
    """An outcome before arm effects: the trajectory (fixed + person deviations) and either the
    score's residual or, for an outcome simulated item by item, each item's noise."""

    systematic: np.ndarray  # (participants, occasions)
    residual: np.ndarray | None
    item_noise: np.ndarray | None  # (participants, occasions, items)


@dataclass(frozen=True)
class SimulatedStudy:
    data: pd.DataFrame
    truth: dict


def schedule_of(protocol: Protocol) -> list[ScheduledOccasion]:
    """The protocol's non-EMA occasions, from the real planner run for a midnight enrollment."""
    midnight = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; UTC has no DST to shift anything
    plan = plan_occasions(protocol, enrolled_at=midnight, timezone="UTC", seed="simulate")
    return [
        ScheduledOccasion(
            schedule_key=planned.schedule_key,
            wave=planned.wave,
            kind=planned.kind,
            instruments=tuple(planned.instruments),
            offset_days=(planned.due_at - midnight).total_seconds() / 86400,
            at_enrollment=planned.kind == "baseline",
        )
        for planned in plan
        if planned.kind != "ema"
    ]


def simulate_study(
    protocol: Protocol, effects: Effects, *, participants: int, seed: int
) -> SimulatedStudy:
    """`participants` synthetic participants of `protocol` generated from `effects` with `seed`."""
    if participants < 1:
        raise ValueError("simulate at least one participant")
    rng = np.random.default_rng(seed)
    n = participants
    schedule = schedule_of(protocol)
    design = AllocationDesign.from_protocol(protocol)
    codes = _codes(rng, n)
    enrolled_hour = rng.uniform(*ENROLLMENT_HOURS, size=n)
    days = np.array(
        [
            [0.0 if o.at_enrollment else o.offset_days - hour / 24 for o in schedule]
            for hour in enrolled_hour
        ]
    ).reshape(n, len(schedule))
    weeks = days / 7
    # Each outcome's person-level deviations and residuals, before any arm effect.
    latent = {
        name: _person_trajectories(rng, outcome, weeks)
        for name, outcome in effects.outcomes.items()
    }
    levels = _strata(rng, protocol, design, effects, latent, schedule)
    arms = _allocate(design, levels, seed)
    arm_index = {arm: i for i, arm in enumerate(design.arms)}
    arm_of = np.array([arm_index[arm] for arm in arms])
    status = _statuses(rng, effects, design.arms, arm_of, days, schedule)
    completed = status == "completed"
    frame = {
        "participant": np.repeat(codes, len(schedule)),
        "arm": np.repeat(arms, len(schedule)),
    }
    for factor in design.factors:
        frame[f"stratum_{factor.name}"] = np.repeat(
            [lv[factor.name] for lv in levels], len(schedule)
        )
    frame |= {
        "occasion": np.tile([o.schedule_key for o in schedule], n),
        "wave": np.tile([o.wave for o in schedule], n),
        "days": days.ravel(),
        "week": weeks.ravel(),
        "consent_version": protocol.model.consent.version,
        "status": status.ravel(),
        "completed": completed.ravel(),
        # Beyond the contract, as analysis.dataset.assemble gives them.
        "kind": np.tile([o.kind for o in schedule], n),
        "withdrawn": np.repeat((status == "cancelled").any(axis=1), len(schedule)),
    }
    for name, outcome in effects.outcomes.items():
        shift = _arm_effects(effects, name, design.arms, arm_of, weeks)
        values, answers = _values(protocol, outcome, latent[name], shift)
        given = completed & np.array([outcome.instrument in o.instruments for o in schedule])
        frame[name] = np.where(given, values, np.nan).ravel()
        if answers:
            for item in protocol.instrument(outcome.instrument).items:
                item_values = answers.get(item.id, np.full(given.shape, np.nan))
                frame[item.id] = np.where(given, item_values, np.nan).ravel()
    frame |= _usage(rng, effects, design.arms, arm_of, days)
    data = pd.DataFrame(frame)
    truth = _truth(protocol, effects, participants, seed, data, schedule)
    return SimulatedStudy(data=data, truth=truth)


def _codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unique `P-XXXXXXXX` codes from the real alphabet (random, so they reveal no order)."""
    alphabet = np.array(list(CODE_ALPHABET))
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        for row in rng.integers(0, len(alphabet), size=(n - len(codes), CODE_LENGTH)):
            code = "P-" + "".join(alphabet[row])
            if code not in seen:
                seen.add(code)
                codes.append(code)
    return np.array(codes)


def _person_trajectories(rng: np.random.Generator, outcome: Outcome, weeks: np.ndarray):
    """Control-arm mean trajectory + random intercept and slope, and the residual (or the item
    noise), before any arm effect and rounding."""
    spec = outcome.spec
    n = weeks.shape[0]
    # (u0, u1) bivariate normal, written out so that an SD of 0 (no random slope) is allowed.
    z = rng.standard_normal((n, 2))
    rho = spec.correlation
    u0 = spec.random_intercept_sd * z[:, [0]]
    u1 = spec.random_slope_sd * (rho * z[:, [0]] + np.sqrt(1 - rho**2) * z[:, [1]])
    systematic = spec.intercept + spec.slope * weeks + u0 + u1 * weeks
    if outcome.basis is not None:
        noise = simulate_items.item_noise(rng, outcome.basis, spec.residual_sd, weeks.shape)
        return Latent(systematic, None, noise)
    return Latent(systematic, rng.normal(0.0, spec.residual_sd, size=weeks.shape), None)


def _values(protocol, outcome: Outcome, latent: Latent, shift) -> tuple[np.ndarray, dict]:
    """The outcome's values with the arm effects `shift` (and the item answers, if simulated)."""
    if latent.item_noise is None:
        return _on_scale(latent.systematic + latent.residual + shift, outcome), {}
    instrument = protocol.instrument(outcome.instrument)
    answers = simulate_items.responses(
        instrument, outcome.basis, latent.systematic + shift, latent.item_noise
    )
    return simulate_items.scored(instrument, outcome.score, answers), answers


def _arm_effects(effects: Effects, name: str, arms, arm_of: np.ndarray, weeks: np.ndarray):
    intercepts = np.array([effects.arm_effect(name, arm).intercept for arm in arms])
    slopes = np.array([effects.arm_effect(name, arm).slope for arm in arms])
    return intercepts[arm_of][:, None] + slopes[arm_of][:, None] * weeks


def _on_scale(values: np.ndarray, outcome: Outcome) -> np.ndarray:
    """Rounded to the score's step (counted from its lower bound) and clipped to its bounds."""
    low = outcome.bounds[0] if outcome.bounds is not None else 0.0
    if outcome.step is not None:
        values = low + np.round((values - low) / outcome.step) * outcome.step
    if outcome.bounds is not None:
        values = np.clip(values, *outcome.bounds)
    return values


def _strata(rng, protocol, design, effects, latent, schedule) -> list[dict[str, str]]:
    """Each participant's level of each factor: from the simulated baseline score for factors
    that cut an instrument score the simulation generates, otherwise drawn with the effects
    file's proportions (uniform by default)."""
    baseline = next((i for i, o in enumerate(schedule) if o.at_enrollment), 0)
    n = next(iter(latent.values())).systematic.shape[0]
    columns: dict[str, np.ndarray] = {}
    for factor in design.factors:
        scores = _baseline_score(protocol, effects, latent, factor, baseline)
        if scores is not None:
            cuts = list(factor.spec.cut_points)
            columns[factor.name] = np.array(
                [factor.levels[bisect.bisect_right(cuts, value)] for value in scores]
            )
            continue
        given = effects.strata.get(factor.name, {})
        weights = np.array([given.get(level, 0.0 if given else 1.0) for level in factor.levels])
        columns[factor.name] = rng.choice(factor.levels, size=n, p=weights / weights.sum())
    return [{name: str(values[i]) for name, values in columns.items()} for i in range(n)]


def _baseline_score(protocol, effects: Effects, latent, factor: Factor, baseline: int):
    spec = factor.spec
    if spec.instrument is None:
        return None
    for name, outcome in effects.outcomes.items():
        if outcome.instrument != spec.instrument:
            continue
        values = _values(protocol, outcome, latent[name], 0.0)[0][:, baseline]
        if outcome.score == spec.score:
            return values
        score = next(
            s for s in protocol.instrument(spec.instrument).scores if s.id == outcome.score
        )
        if score.transform is not None and score.transform.of == spec.score:
            return (values - score.transform.add) / score.transform.multiply
    return None


def _allocate(design: AllocationDesign, levels: list[dict[str, str]], seed: int) -> np.ndarray:
    """Arms from the protocol's own scheme, in enrollment order (simulation namespace)."""
    randomiser = Randomiser(design, f"flourish-simulate:{seed}", namespace=SIMULATION)
    ledger = Ledger()
    arms = []
    for participant_levels in levels:
        assignment = randomiser.assign(participant_levels, ledger)
        randomiser.record(assignment, ledger)
        arms.append(assignment.arm)
    return np.array(arms)


def _statuses(rng, effects: Effects, arms, arm_of, days: np.ndarray, schedule) -> np.ndarray:
    """`completed`, `missed` or `cancelled` for every participant x occasion."""
    hazards = np.array([effects.monthly_hazard(arm) for arm in arms])
    # A constant monthly hazard h is the daily rate -ln(1 - h) / days per month.
    rates = -np.log1p(-hazards[arm_of]) / DAYS_PER_MONTH
    with np.errstate(divide="ignore"):
        scale = np.where(rates > 0, 1 / np.where(rates > 0, rates, 1), np.inf)
    left_at = rng.exponential(1.0, size=len(arm_of)) * scale
    withdrew = rng.random(len(arm_of)) < effects.dropout.withdrawn_share
    skipped = rng.random(days.shape) < effects.dropout.intermittent_missing
    baseline = np.array([o.at_enrollment for o in schedule])
    skipped[:, baseline] = False  # the baseline is answered before allocation
    gone = days >= left_at[:, None]
    status = np.where(skipped, "missed", "completed").astype(object)
    status[gone] = np.where(np.broadcast_to(withdrew[:, None], days.shape), "cancelled", "missed")[
        gone
    ]
    return status


def _usage(rng, effects: Effects, arms, arm_of: np.ndarray, days: np.ndarray) -> dict:
    """Assistant use in the 7 days before each occasion (nothing before enrollment)."""
    shape = days.shape
    if not effects.usage:
        return {column: np.full(days.size, np.nan) for column in USAGE_COLUMNS}
    sessions = np.zeros(shape)
    turns = np.zeros(shape)
    minutes = np.zeros(shape)
    night = np.zeros(shape)
    for index, arm in enumerate(arms):
        spec = effects.usage.get(arm)
        rows = arm_of == index
        if spec is None or not rows.any():
            continue
        count = int(rows.sum())
        cv2 = spec.between_person_cv**2
        rate = (
            rng.gamma(1 / cv2, spec.sessions_per_week * cv2, size=count)
            if cv2 > 0
            else np.full(count, spec.sessions_per_week)
        )
        block = rng.poisson(np.broadcast_to(rate[:, None], (count, shape[1])))
        block = np.where(days[rows] > 0, block, 0)
        sessions[rows] = block
        turns[rows] = block + rng.poisson(block * (spec.turns_per_session - 1))
        minutes[rows] = np.where(
            block > 0, rng.gamma(np.maximum(block, 1) * 2.0, spec.minutes_per_session / 2.0), 0
        )
        night[rows] = rng.binomial(block, spec.night_share)
    with np.errstate(invalid="ignore", divide="ignore"):
        night_share = np.where(sessions > 0, night / sessions, np.nan)
        mean_minutes = np.where(sessions > 0, minutes / sessions, np.nan)
    values = (sessions, turns, np.round(minutes, 2), night_share, np.round(mean_minutes, 3))
    return {column: value.ravel() for column, value in zip(USAGE_COLUMNS, values, strict=True)}


def _truth(protocol, effects: Effects, participants, seed, data, schedule) -> dict:
    arms = [arm.key for arm in protocol.model.arms]
    firsts = data.groupby("participant", sort=False).first()
    outcomes = {}
    for name, outcome in effects.outcomes.items():
        outcomes[name] = outcome.spec.model_dump(exclude={"arms", "bounds", "step"}) | {
            "instrument": outcome.instrument,
            "score": outcome.score,
            "bounds": list(outcome.bounds) if outcome.bounds is not None else None,
            "step": outcome.step,
            "arms": {arm: effects.arm_effect(name, arm).model_dump() for arm in arms},
            "contrasts_vs_control": {
                f"{arm} - {effects.control_arm}": {
                    "slope_per_week": effects.arm_effect(name, arm).slope
                    - effects.arm_effect(name, effects.control_arm).slope,
                    "intercept": effects.arm_effect(name, arm).intercept
                    - effects.arm_effect(name, effects.control_arm).intercept,
                }
                for arm in arms
                if arm != effects.control_arm
            },
        }
    return {
        "format": TRUTH_FORMAT,
        "seed": seed,
        "participants": participants,
        "protocol": {"slug": protocol.slug, "content_hash": protocol.content_hash},
        "effects_file": {
            "source": effects.source,
            "sha256": hashlib.sha256(effects.text.encode()).hexdigest(),
        },
        "control_arm": effects.control_arm,
        "primary": effects.primary,
        "model": "y = intercept + slope*week + arm.intercept + arm.slope*week + u0 + u1*week + e",
        "outcomes": outcomes,
        "dropout": effects.dropout.model_dump()
        | {
            "daily_rate": {
                arm: -math.log1p(-effects.monthly_hazard(arm)) / DAYS_PER_MONTH for arm in arms
            }
        },
        "strata": effects.strata,
        "usage": {arm: spec.model_dump() for arm, spec in effects.usage.items()},
        "schedule": [
            {"occasion": o.schedule_key, "wave": o.wave, "instruments": list(o.instruments)}
            for o in schedule
        ],
        "realised": {
            "allocated": firsts["arm"].value_counts().reindex(arms, fill_value=0).to_dict()
        },
    }


def write_study(study: SimulatedStudy, out_dir: str | Path) -> list[Path]:
    """`dataset.csv`, `truth.json` and `README.txt` in `out_dir` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_bytes = canonical_csv(study.data)
    truth = study.truth | {"dataset_sha256": hashlib.sha256(csv_bytes).hexdigest()}
    files = {
        "dataset.csv": csv_bytes,
        "truth.json": (json.dumps(truth, indent=2, sort_keys=True) + "\n").encode(),
        "README.txt": (
            f"Synthetic data, not real participants: {study.truth['participants']} simulated "
            f"participants of {study.truth['protocol']['slug']} (seed {study.truth['seed']}); "
            "truth.json holds the generating parameters.\n"
        ).encode(),
    }
    written = []
    for name, content in files.items():
        (out / name).write_bytes(content)
        written.append(out / name)
    return written
