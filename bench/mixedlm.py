"""Seconds to fit score ~ arm*week + (1 + week | pid) by REML, fast engine against statsmodels.

    python bench/mixedlm.py                       # 300, 3,000, 30,000 participants
    python bench/mixedlm.py --statsmodels-up-to 30000
    python bench/mixedlm.py --sizes 300 --repeat 3

The data: a simulated 3-arm trial (control, instruct, reflective; equal allocation), 13 weekly
waves (weeks 0 to 12, each answered up to two days late), a random intercept and slope per
participant (SDs 8 and 0.6 points, correlation -0.2), residual SD 5, arm-by-week effects of 0.3
and 0.15 points a week. Dropout is exponential with a hazard of 2 % a week (about a fifth gone by
week 12) and 5 % of the remaining occasions are skipped at random.

Both engines fit the same rows with `analysis.mixed.fit_lmm`, so the times include building the
design matrices. Printed per size: rows, seconds of each engine (the best of `--repeat` runs),
statsmodels' time divided by the fast engine's (the speed-up, measured in the same run), and the
largest relative difference between the two engines' estimates (fixed effects, variances,
residual variance, log-likelihood; the covariance as a correlation difference). statsmodels
runs only up to `--statsmodels-up-to` participants (default 3,000: at 30,000 it takes over a
minute). See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.mixed import LmmResult, fit_lmm  # noqa: E402

ARMS = ("control", "instruct", "reflective")
ARM_SLOPE = {"control": 0.0, "instruct": 0.3, "reflective": 0.15}
WAVES = 13
FORMULA = "score ~ arm * week"
RE_FORMULA = "~week"


def simulate(participants: int, seed: int) -> pd.DataFrame:
    """The trial's long-format data, one row per answered occasion."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(len(ARMS), size=participants)
    sd = np.array([8.0, 0.6])
    corr = np.array([[1.0, -0.2], [-0.2, 1.0]])
    u = rng.multivariate_normal([0.0, 0.0], corr * np.outer(sd, sd), size=participants)
    dropout_week = rng.exponential(1 / 0.02, size=participants)
    pid = np.repeat(np.arange(participants), WAVES)
    wave = np.tile(np.arange(WAVES), participants)
    week = wave + rng.uniform(0, 2 / 7, size=pid.size) * (wave > 0)
    arm_slope = np.array([ARM_SLOPE[a] for a in ARMS])[arm[pid]]
    score = 50 + u[pid, 0] + (0.1 + arm_slope + u[pid, 1]) * week + rng.normal(0, 5, pid.size)
    answered = (week <= dropout_week[pid]) & ((wave == 0) | (rng.random(pid.size) > 0.05))
    frame = pd.DataFrame(
        {
            "pid": pid.astype(str),
            "arm": np.array(ARMS)[arm[pid]],
            "week": week,
            "score": score,
        }
    )
    return frame[answered].reset_index(drop=True)


def timed_fit(data: pd.DataFrame, engine: str, repeat: int) -> tuple[float, LmmResult]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fit_lmm(data, FORMULA, "pid", RE_FORMULA, reml=True, engine=engine)
        best = min(best, time.perf_counter() - start)
    return best, result


def max_relative_difference(a: LmmResult, b: LmmResult) -> float:
    """Largest relative difference of a from b over the estimates both report."""
    pairs = list(zip(a.params, b.params, strict=True))
    pairs += list(zip(np.diag(a.random_cov), np.diag(b.random_cov), strict=True))
    pairs += [(a.residual_var, b.residual_var), (a.loglik, b.loglik)]
    rel = [abs(x - y) / abs(y) for x, y in pairs if y != 0]
    corr_a, corr_b = a.random_corr.to_numpy(), b.random_corr.to_numpy()
    rel.append(float(np.nanmax(np.abs(corr_a - corr_b))))
    return max(rel)


def run(sizes: list[int], statsmodels_up_to: int, repeat: int, seed: int) -> list[list[str]]:
    lines = [["participants", "rows", "fast s", "statsmodels s", "ratio", "max rel diff"]]
    for size in sizes:
        data = simulate(size, seed)
        fast_seconds, fast = timed_fit(data, "fast", repeat)
        cells = [f"{size:,}", f"{len(data):,}", f"{fast_seconds:.3f}"]
        if size <= statsmodels_up_to:
            sm_seconds, reference = timed_fit(data, "statsmodels", repeat)
            diff = max_relative_difference(fast, reference)
            cells += [f"{sm_seconds:.3f}", f"{sm_seconds / fast_seconds:.1f}", f"{diff:.1e}"]
        else:
            cells += ["-", "-", "-"]
        lines.append(cells)
        for warning in fast.warnings:
            print(f"warning at {size:,} participants: {warning}", file=sys.stderr)
    return lines


def table(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [f"mixedlm: {FORMULA} + (1 + week | pid), REML, {WAVES} weekly waves"]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 3_000, 30_000])
    parser.add_argument("--statsmodels-up-to", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if min(args.sizes) < 10 or args.repeat < 1:
        parser.error("sizes must be at least 10 participants and --repeat at least 1")
    lines = run(args.sizes, args.statsmodels_up_to, args.repeat, args.seed)
    sys.stdout.write(table(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
