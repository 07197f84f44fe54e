"""Researcher accounts: roles and what each may do, password policy, sign-in and lockout.

Passwords are hashed with argon2id. Every change to an account is written to the audit log with
the account's state before and after (never the password hash), and so is every sign-in attempt:
the count of recent failed attempts in that log is what locks an account, so lockout needs no
column of its own and cannot be reset without leaving a trace.

Functions here add to the caller's session and never commit; the caller's unit of work decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func
from sqlmodel import Session, col, select

from . import audit
from .models import AuditEvent, Researcher

ROLES = ("admin", "investigator", "coordinator", "analyst")

# Which roles hold each permission. Analysts work on pseudonymous data only, so they never hold
# `view_contacts`; unblinding and protocol changes belong to the people who sign off a study.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view_study": frozenset(ROLES),
    "view_contacts": frozenset({"admin", "investigator", "coordinator"}),
    "manage_participants": frozenset({"admin", "investigator", "coordinator"}),
    "export_data": frozenset({"admin", "investigator", "analyst"}),
    "export_audit": frozenset({"admin", "investigator"}),
    "load_protocol": frozenset({"admin", "investigator"}),
    "unblind": frozenset({"admin", "investigator"}),
    "manage_users": frozenset({"admin"}),
}

MIN_PASSWORD_LENGTH = 12
# argon2 hashes anything, but a megabyte "password" would be a cheap way to burn server CPU.
MAX_PASSWORD_LENGTH = 1024
LOCKOUT_THRESHOLD = 10
LOCKOUT_WINDOW = timedelta(minutes=15)

_hasher = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters


class AccountError(ValueError):
    """A request about an account that cannot be carried out; the message says why."""


def has_permission(role: str, permission: str) -> bool:
    """Whether `role` holds `permission`. Unknown permissions are a programming error."""
    try:
        return role in PERMISSIONS[permission]
    except KeyError:
        raise KeyError(f"unknown permission {permission!r}") from None


def permissions_of(role: str) -> list[str]:
    """The permissions `role` holds, sorted, for documentation and `flourish user list`."""
    return sorted(name for name, roles in PERMISSIONS.items() if role in roles)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_policy(password: str, *, email: str = "") -> None:
    """Raise AccountError when `password` is too weak to protect participants' data."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if email and password.strip().lower() == normalise_email(email):
        raise AccountError("the password must not be the email address")
    if len(set(password)) == 1:
        raise AccountError("the password must not be one character repeated")


def public_state(researcher: Researcher) -> dict:
    """What the audit log hashes about an account: everything except the password hash."""
    return {
        "id": researcher.id,
        "email": researcher.email,
        "name": researcher.name,
        "role": researcher.role,
        "is_active": researcher.is_active,
    }


def find_researcher(session: Session, email: str) -> Researcher | None:
    """The account registered under `email` (case-insensitive), or None."""
    return session.exec(
        select(Researcher).where(Researcher.email == normalise_email(email))
    ).first()


def get_researcher(session: Session, email: str) -> Researcher:
    """Like `find_researcher`, but an unknown email is an AccountError."""
    researcher = find_researcher(session, email)
    if researcher is None:
        raise AccountError(f"no researcher account with email {normalise_email(email)!r}")
    return researcher


def list_researchers(session: Session) -> Sequence[Researcher]:
    """All accounts, active and inactive, ordered by email."""
    return session.exec(select(Researcher).order_by(col(Researcher.email))).all()


def create_researcher(
    session: Session,
    *,
    email: str,
    password: str,
    role: str,
    name: str = "",
    actor: str,
) -> Researcher:
    """Register a researcher with a role; the email is stored in lower case."""
    _require_actor(actor)
    email = normalise_email(email)
    _check_email(email)
    _check_role(role)
    name = name.strip()
    if len(name) > 200:
        raise AccountError("the name must have at most 200 characters")
    check_password_policy(password, email=email)
    if find_researcher(session, email) is not None:
        raise AccountError(f"a researcher account with email {email!r} already exists")
    researcher = Researcher(email=email, name=name, role=role, password_hash=_hasher.hash(password))
    session.add(researcher)
    session.flush()
    audit.record(
        session,
        actor,
        "researcher.created",
        entity_type="researcher",
        entity_id=researcher.id,
        after=public_state(researcher),
        details={"role": role},
    )
    return researcher


def authenticate(
    session: Session, email: str, password: str, now: datetime, *, origin: str = ""
) -> Researcher | None:
    """The researcher whose email and password these are, or None.

    None whatever the reason (unknown email, wrong password, inactive account, locked out), so
    that callers cannot leak which; the audit log records the reason. Unknown emails still cost
    one argon2 verification, so response times do not reveal which emails have accounts. The
    caller must commit even when this returns None: failed attempts are what lockout counts.
    `origin` (e.g. the client's IP address) is kept in the audit event's details.
    """
    details = {"origin": origin} if origin else {}
    researcher = find_researcher(session, email)
    if researcher is None:
        _verify(_dummy_hash(), password)
        audit.record(
            session,
            "anonymous",
            "login.failed",
            entity_type="researcher",
            details={**details, "reason": "unknown_email", "email_sha256": _fingerprint(email)},
            at=now,
        )
        return None

    password_ok = _verify(researcher.password_hash, password)
    refusal = None
    if not researcher.is_active:
        refusal = "inactive"
    elif is_locked_out(session, researcher, now):
        refusal = "locked_out"
    if refusal is not None:
        # A correct password during a lockout still fails; otherwise guessing would go on.
        audit.record(
            session,
            "anonymous",
            "login.refused",
            entity_type="researcher",
            entity_id=researcher.id,
            details={**details, "reason": refusal},
            at=now,
        )
        return None
    if not password_ok:
        audit.record(
            session,
            "anonymous",
            "login.failed",
            entity_type="researcher",
            entity_id=researcher.id,
            details={**details, "reason": "wrong_password"},
            at=now,
        )
        return None

    if _hasher.check_needs_rehash(researcher.password_hash):
        researcher.password_hash = _hasher.hash(password)
        details["rehashed"] = True
    researcher.last_login_at = now
    session.add(researcher)
    audit.record(
        session,
        actor_for(researcher),
        "login.succeeded",
        entity_type="researcher",
        entity_id=researcher.id,
        details=details,
        at=now,
    )
    return researcher


def is_locked_out(session: Session, researcher: Researcher, now: datetime) -> bool:
    """Whether the account has had LOCKOUT_THRESHOLD failed sign-ins in the last LOCKOUT_WINDOW
    since its last successful one. The window slides: one attempt frees up as each ages out."""
    since = now - LOCKOUT_WINDOW
    if researcher.last_login_at is not None:
        since = max(since, researcher.last_login_at)
    failures = session.exec(
        select(func.count(col(AuditEvent.id))).where(
            AuditEvent.action == "login.failed",
            AuditEvent.entity_type == "researcher",
            AuditEvent.entity_id == str(researcher.id),
            col(AuditEvent.occurred_at) > since,
        )
    ).one()
    return failures >= LOCKOUT_THRESHOLD


def set_password(session: Session, researcher: Researcher, password: str, *, actor: str) -> None:
    """Replace the password. Signed-in sessions of this account end on their next request."""
    _require_actor(actor)
    check_password_policy(password, email=researcher.email)
    researcher.password_hash = _hasher.hash(password)
    session.add(researcher)
    session.flush()
    state = public_state(researcher)
    audit.record(
        session,
        actor,
        "researcher.password_changed",
        entity_type="researcher",
        entity_id=researcher.id,
        before=state,
        after=state,
    )


def set_role(session: Session, researcher: Researcher, role: str, *, actor: str) -> None:
    """Give the researcher another role, keeping at least one active admin."""
    _require_actor(actor)
    _check_role(role)
    if role == researcher.role:
        raise AccountError(f"{researcher.email} already has the role {role!r}")
    if researcher.role == "admin" and researcher.is_active:
        _keep_an_admin(session, researcher, "change the role of")
    before = public_state(researcher)
    researcher.role = role
    session.add(researcher)
    session.flush()
    audit.record(
        session,
        actor,
        "researcher.role_changed",
        entity_type="researcher",
        entity_id=researcher.id,
        before=before,
        after=public_state(researcher),
        details={"from": before["role"], "to": role},
    )


def deactivate(session: Session, researcher: Researcher, *, actor: str) -> None:
    """Stop the account from signing in; its current sessions end on their next request.

    Accounts are deactivated, never deleted, because the audit log names them."""
    _require_actor(actor)
    if not researcher.is_active:
        raise AccountError(f"{researcher.email} is already inactive")
    if researcher.role == "admin":
        _keep_an_admin(session, researcher, "deactivate")
    _set_active(session, researcher, False, actor, "researcher.deactivated")


def reactivate(session: Session, researcher: Researcher, *, actor: str) -> None:
    """Let a deactivated account sign in again."""
    _require_actor(actor)
    if researcher.is_active:
        raise AccountError(f"{researcher.email} is already active")
    _set_active(session, researcher, True, actor, "researcher.reactivated")


def actor_for(researcher: Researcher) -> str:
    """How the audit log names this researcher when they act."""
    return f"researcher:{researcher.email}"


def _set_active(
    session: Session, researcher: Researcher, active: bool, actor: str, action: str
) -> None:
    before = public_state(researcher)
    researcher.is_active = active
    session.add(researcher)
    session.flush()
    audit.record(
        session,
        actor,
        action,
        entity_type="researcher",
        entity_id=researcher.id,
        before=before,
        after=public_state(researcher),
    )


def _keep_an_admin(session: Session, researcher: Researcher, verb: str) -> None:
    others = session.exec(
        select(func.count(col(Researcher.id))).where(
            Researcher.role == "admin",
            col(Researcher.is_active).is_(True),
            Researcher.id != researcher.id,
        )
    ).one()
    if others == 0:
        raise AccountError(
            f"cannot {verb} {researcher.email}: it is the only active admin; "
            "make another researcher admin first"
        )


def _require_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise AccountError("an actor is required: every change to an account is audited")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def _check_email(email: str) -> None:
    local, _, domain = email.partition("@")
    if (
        not local
        or not domain
        or "@" in domain
        or any(ch.isspace() for ch in email)
        or domain.startswith(".")
        or domain.endswith(".")
    ):
        raise AccountError(f"{email!r} is not an email address")
    if len(email) > 320:
        raise AccountError("the email address must have at most 320 characters")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("flourish: no account has this password")


def _fingerprint(email: str) -> str:
    # Lets an incident review group attempts on one unknown email without storing what was typed
    # (people sometimes type a password into the email field).
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()[:16]


__all__ = [
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_WINDOW",
    "MIN_PASSWORD_LENGTH",
    "PERMISSIONS",
    "ROLES",
    "AccountError",
    "actor_for",
    "authenticate",
    "check_password_policy",
    "create_researcher",
    "deactivate",
    "find_researcher",
    "get_researcher",
    "has_permission",
    "is_locked_out",
    "list_researchers",
    "normalise_email",
    "permissions_of",
    "public_state",
    "reactivate",
    "set_password",
    "set_role",
]
