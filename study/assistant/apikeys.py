"""Per-study API keys for machine clients such as assistants that run outside Flourish.

A key looks like `flk_<prefix>_<secret>`. The prefix (public, unique) finds the row; only a
SHA-256 of the secret is stored, and the presented secret is compared with it in constant time.
The secret is shown once, when the key is created, and cannot be recovered: a lost key is
revoked and replaced. A key belongs to exactly one study and carries scopes naming what it may
do; creating and revoking keys is audited (never with the secret or its hash).

Functions here add to the caller's session and never commit; the caller's unit of work decides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from study import audit
from study.models import ApiKey

# What a key may be allowed to do. One scope for now; the format leaves room for more.
SCOPES: dict[str, str] = {
    "interactions:write": "send assistant turns to POST /api/v1/interactions",
}
KEY_PREFIX = "flk"
_KEY = re.compile(rf"^{KEY_PREFIX}_([a-z0-9]{{12}})_([A-Za-z0-9_-]{{43}})$")
# Compared against when a prefix is unknown, so that a miss costs what a hit costs.
_NO_SUCH_KEY = hashlib.sha256(b"flourish: no api key has this secret").hexdigest()


class ApiKeyError(ValueError):
    """A key cannot be created, found or used as asked; the message says why."""


class InvalidKey(ApiKeyError):
    """The presented key is malformed, unknown, wrong or revoked (HTTP 401)."""


class MissingScope(ApiKeyError):
    """The key is valid but lacks the scope the request needs (HTTP 403)."""


def create_api_key(
    session: Session,
    *,
    study_id: int,
    name: str,
    scopes: Iterable[str],
    actor: str,
    now: datetime,
) -> tuple[ApiKey, str]:
    """Make a key for one study; returns `(row, key)`. The key is shown to the caller only now."""
    name = " ".join(name.split())
    if not name:
        raise ApiKeyError("give the key a name that says who or what uses it")
    if len(name) > 200:
        raise ApiKeyError("the key's name must have at most 200 characters")
    chosen = sorted(set(scopes))
    if not chosen:
        raise ApiKeyError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        study_id=study_id,
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=chosen,
        created_by=actor,
        created_at=now,
    )
    session.add(key)
    session.flush()
    audit.record(
        session,
        actor,
        "apikey.create",
        entity_type="api_key",
        entity_id=key.id,
        after=public_state(key),
        details={"study_id": study_id, "prefix": prefix, "name": name, "scopes": chosen},
        at=now,
    )
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def list_api_keys(session: Session, study_id: int) -> Sequence[ApiKey]:
    """The study's keys, revoked ones included, oldest first."""
    return session.exec(
        select(ApiKey).where(ApiKey.study_id == study_id).order_by(col(ApiKey.id))
    ).all()


def get_api_key(session: Session, study_id: int, prefix: str) -> ApiKey:
    """The study's key with this prefix (the part after `flk_`); ApiKeyError if none."""
    key = session.exec(
        select(ApiKey).where(ApiKey.study_id == study_id, ApiKey.prefix == prefix)
    ).first()
    if key is None:
        raise ApiKeyError(f"this study has no API key with prefix {prefix!r}")
    return key


def revoke_api_key(session: Session, key: ApiKey, *, actor: str, now: datetime) -> None:
    """Stop the key from working, from the next request on. Keys are revoked, never deleted."""
    if key.revoked_at is not None:
        raise ApiKeyError(f"API key {key.prefix} was already revoked")
    before = public_state(key)
    key.revoked_at = now
    session.add(key)
    session.flush()
    audit.record(
        session,
        actor,
        "apikey.revoke",
        entity_type="api_key",
        entity_id=key.id,
        before=before,
        after=public_state(key),
        details={"study_id": key.study_id, "prefix": key.prefix},
        at=now,
    )


def verify_api_key(session: Session, presented: str, *, scope: str, now: datetime) -> ApiKey:
    """The key `presented` is, if it is valid, not revoked and holds `scope`.

    Raises InvalidKey (without saying which of malformed, unknown, wrong or revoked, so callers
    cannot leak it) or MissingScope. Records the time of use on the key.
    """
    if scope not in SCOPES:
        raise KeyError(f"unknown scope {scope!r}")
    match = _KEY.match(presented.strip())
    prefix, secret = match.groups() if match else ("", "")
    key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first() if prefix else None
    expected = key.secret_hash if key is not None else _NO_SUCH_KEY
    matches = hmac.compare_digest(_hash(secret), expected)
    if key is None or not matches or key.revoked_at is not None:
        raise InvalidKey("invalid or revoked API key")
    if scope not in key.scopes:
        raise MissingScope(f"this API key lacks the scope {scope!r}")
    key.last_used_at = now
    session.add(key)
    return key


def public_state(key: ApiKey) -> dict:
    """What the audit log hashes about a key: everything but the secret's hash."""
    return {
        "id": key.id,
        "study_id": key.study_id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "created_by": key.created_by,
        "revoked_at": key.revoked_at,
    }


def _hash(secret: str) -> str:
    # A plain SHA-256 suffices: the secret is 256 random bits, so there is nothing to guess.
    return hashlib.sha256(secret.encode()).hexdigest()
