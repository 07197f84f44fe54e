"""Property-based fuzzing (hypothesis) of what the outside world can send Flourish: protocol
files, survey form posts, Twilio webhooks. Example counts are modest so the suite stays quick;
raise them locally with FLOURISH_FUZZ_EXAMPLES=<n> for a longer hunt."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for a fuzz test: `examples` (or FLOURISH_FUZZ_EXAMPLES), no deadline
    (a loaded CI machine is slow, not wrong), no example database written into the checkout."""
    return settings(
        max_examples=int(os.environ.get("FLOURISH_FUZZ_EXAMPLES", examples)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
