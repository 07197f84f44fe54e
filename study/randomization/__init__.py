"""Randomisation: allocating participants to arms, concealed and reproducible from a seed.

    levels = stratum_levels(protocol, answers=screening_answers, scores=baseline_scores)
    seed = allocation_seed(protocol, os.environ, secret_key=settings.secret_key)
    allocation = allocate(session, participant=p, protocol=protocol, strata=levels,
                          seed=seed, actor="participant:P-7K3M9Q")

Schemes (permuted blocks, minimisation, simple) are pure functions in `schemes`; `allocate` is
the only writer of `Allocation` rows; `simulate` runs the same code in memory. Nothing here
tells anyone the next allocation. See docs/randomization.md.
"""

from .design import AllocationError, factor_levels, parse_stratum_key, stratum_key, stratum_levels
from .seed import allocation_seed
from .service import Mismatch, Verification, allocate, verify_allocations
from .simulation import counts_csv, simulate

__all__ = [
    "AllocationError",
    "Mismatch",
    "Verification",
    "allocate",
    "allocation_seed",
    "counts_csv",
    "factor_levels",
    "parse_stratum_key",
    "simulate",
    "stratum_key",
    "stratum_levels",
    "verify_allocations",
]
