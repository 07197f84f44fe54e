"""The secret allocation seed: from the environment variable the protocol names.

The seed is what makes the sequence both reproducible (by whoever holds it) and concealed (from
everyone else), so it never appears in the protocol, a log, the audit trail or an export.

- `allocation.seed_env` set and the variable present: that value.
- Production (`FLOURISH_ENV=production`): a missing variable, a protocol without `seed_env`, or
  a seed shorter than 16 characters is an error.
- Development and test: a fallback derived from the instance's secret key and the study slug,
  `HMAC-SHA256(FLOURISH_SECRET_KEY, "allocation-seed:" + slug)`, with a warning. It is stable
  for as long as that secret key is, and differs between studies and instances.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping

from ..protocol import Protocol
from .design import AllocationError

MIN_PRODUCTION_SEED_LENGTH = 16

log = logging.getLogger(__name__)


def allocation_seed(
    protocol: Protocol, environ: Mapping[str, str], *, secret_key: str | None = None
) -> str:
    """The study's allocation seed (see the module docstring for where it comes from).

    `secret_key` is the running instance's `Settings.secret_key`; without it the fallback uses
    `FLOURISH_SECRET_KEY` from `environ`, or the development key kept in the instance folder.
    """
    name = protocol.model.allocation.seed_env
    value = environ.get(name, "") if name else ""
    production = environ.get("FLOURISH_ENV", "development") == "production"
    if value:
        if production and len(value) < MIN_PRODUCTION_SEED_LENGTH:
            raise AllocationError(
                f"{name} is shorter than {MIN_PRODUCTION_SEED_LENGTH} characters, which could be "
                'guessed; generate one with: python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"'
            )
        return value
    if production:
        if name:
            raise AllocationError(
                f"the allocation seed is missing: set the environment variable {name} "
                "(production never falls back to a derived seed)"
            )
        raise AllocationError(
            "the protocol names no allocation.seed_env; production needs a secret seed "
            "held in an environment variable"
        )
    key = secret_key or environ.get("FLOURISH_SECRET_KEY") or _instance_secret_key(environ)
    log.warning(
        "allocation seed for study %s: %s; using the development fallback derived from the "
        "instance's secret key (set it before enrolling real participants)",
        protocol.slug,
        f"{name} is not set" if name else "the protocol names no seed_env",
    )
    message = f"allocation-seed:{protocol.slug}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _instance_secret_key(environ: Mapping[str, str]) -> str:
    from ..config import ConfigError, Settings

    try:
        return Settings.from_env(environ).secret_key
    except ConfigError as exc:
        raise AllocationError(f"no allocation seed and no secret key to derive one: {exc}") from exc
