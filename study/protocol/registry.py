"""Protocols in the database: studies, numbered protocol versions (amendments) and arms.

Registering the same content again changes nothing. Changed content (the protocol or any file
it refers to) becomes the next version. Arms are never deleted, since allocations and analyses
refer to them: an arm that leaves the protocol is marked retired in the version that removed
it, and comes back (un-retired) if a later version restores it. Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from .. import audit
from ..models import Arm, ProtocolVersion, Study
from .bundle import from_bundle, to_bundle
from .parse import Protocol


class RegistrationError(ValueError):
    """The protocol cannot be registered as it stands (the message says why and what to do)."""


@dataclass(frozen=True)
class Registration:
    """What `register_protocol` did: the study and the version now in force."""

    study: Study
    version: ProtocolVersion
    created_study: bool
    created_version: bool

    @property
    def outcome(self) -> str:
        """`new` (first version of a new study), `amended` or `unchanged`."""
        if self.created_study:
            return "new"
        return "amended" if self.created_version else "unchanged"


def register_protocol(session: Session, protocol: Protocol, actor: str) -> Registration:
    """Record `protocol` as its study's newest version, in the caller's transaction."""
    spec = protocol.model.study
    study = session.exec(select(Study).where(Study.slug == spec.slug)).first()
    created_study = study is None
    if study is None:
        study = Study(slug=spec.slug, title=spec.title)
        session.add(study)
        session.flush()
        audit.record(
            session,
            actor,
            "study.create",
            entity_type="study",
            entity_id=study.id,
            after=_study_state(study),
        )
    current = current_version(session, study.id)
    if current is not None and current.content_hash == protocol.content_hash:
        return Registration(study, current, False, False)
    earlier = session.exec(
        select(ProtocolVersion).where(
            ProtocolVersion.study_id == study.id,
            ProtocolVersion.content_hash == protocol.content_hash,
        )
    ).first()
    if earlier is not None:
        raise RegistrationError(
            f"this content is identical to version {earlier.number} of '{spec.slug}', which "
            f"version {current.number} superseded; to return to it, register it as a new "
            "amendment that says so (e.g. set study.version_note)"
        )

    number = (current.number if current else 0) + 1
    version = ProtocolVersion(
        study_id=study.id,
        number=number,
        content_hash=protocol.content_hash,
        source=to_bundle(protocol),
        source_name=protocol.source_name[-500:],
        loaded_by=actor[:200],
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        actor,
        "protocol.version_create",
        entity_type="protocol_version",
        entity_id=version.id,
        before=None
        if current is None
        else {"number": current.number, "content_hash": current.content_hash},
        after={"number": number, "content_hash": protocol.content_hash},
        details={"study": spec.slug, "number": number, "source_name": version.source_name},
    )
    if study.title != spec.title:
        before = _study_state(study)
        study.title = spec.title
        session.add(study)
        audit.record(
            session,
            actor,
            "study.update",
            entity_type="study",
            entity_id=study.id,
            before=before,
            after=_study_state(study),
            details={"version": number},
        )
    _sync_arms(session, study, protocol, number, actor)
    session.flush()
    return Registration(study, version, created_study, True)


def _sync_arms(session: Session, study: Study, protocol: Protocol, number: int, actor: str) -> None:
    existing = {arm.key: arm for arm in session.exec(select(Arm).where(Arm.study_id == study.id))}
    wanted = {spec.key: spec for spec in protocol.model.arms}
    for key, spec in wanted.items():
        arm = existing.get(key)
        if arm is None:
            arm = Arm(
                study_id=study.id,
                key=key,
                name=spec.name,
                has_assistant=spec.assistant is not None,
                introduced_in_version=number,
            )
            session.add(arm)
            session.flush()
            _audit_arm(session, actor, "arm.create", arm, None, number)
            continue
        before = _arm_state(arm)
        action = "arm.reinstate" if arm.retired_in_version is not None else "arm.update"
        arm.name = spec.name
        arm.has_assistant = spec.assistant is not None
        arm.retired_in_version = None
        if _arm_state(arm) != before:
            session.add(arm)
            _audit_arm(session, actor, action, arm, before, number)
    for key, arm in existing.items():
        if key not in wanted and arm.retired_in_version is None:
            before = _arm_state(arm)
            arm.retired_in_version = number
            session.add(arm)
            _audit_arm(session, actor, "arm.retire", arm, before, number)


def _audit_arm(
    session: Session, actor: str, action: str, arm: Arm, before: dict | None, number: int
) -> None:
    audit.record(
        session,
        actor,
        action,
        entity_type="arm",
        entity_id=arm.id,
        before=before,
        after=_arm_state(arm),
        details={"key": arm.key, "version": number},
    )


def _study_state(study: Study) -> dict:
    return {"slug": study.slug, "title": study.title, "status": study.status}


def _arm_state(arm: Arm) -> dict:
    return {
        "key": arm.key,
        "name": arm.name,
        "has_assistant": arm.has_assistant,
        "introduced_in_version": arm.introduced_in_version,
        "retired_in_version": arm.retired_in_version,
    }


def current_version(session: Session, study_id: int) -> ProtocolVersion | None:
    """The study's protocol version in force: the highest-numbered one."""
    return session.exec(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == study_id)
        .order_by(col(ProtocolVersion.number).desc())
        .limit(1)
    ).first()


def list_versions(session: Session, study_id: int) -> list[ProtocolVersion]:
    """All versions of a study's protocol, oldest first."""
    return list(
        session.exec(
            select(ProtocolVersion)
            .where(ProtocolVersion.study_id == study_id)
            .order_by(col(ProtocolVersion.number))
        )
    )


def load_version(version: ProtocolVersion) -> Protocol:
    """Re-parse a stored version from its bundle (no files on disk needed; hash verified)."""
    return from_bundle(version.source, version.source_name or f"protocol version {version.number}")


@dataclass
class ProtocolCache:
    """Parsed protocol versions by id and content hash (a stored version never changes, and the
    hash tells apart versions of the same id in different databases). Callers must treat the
    returned `Protocol` as read-only: it is shared."""

    limit: int = 64
    versions: dict[tuple[int, str], Protocol] = field(default_factory=dict)

    def load(self, version: ProtocolVersion) -> Protocol:
        key = (version.id, version.content_hash)
        if key not in self.versions:
            if len(self.versions) >= self.limit:
                self.versions.pop(next(iter(self.versions)))
            self.versions[key] = load_version(version)
        return self.versions[key]


# Parsing a stored protocol costs far more than using it (a quarter of a second for the example,
# on every participant page and incoming text otherwise); versions never change, so one cache per
# process serves every caller.
_PARSED = ProtocolCache()


def parsed_version(version: ProtocolVersion) -> Protocol:
    """`load_version`, parsed once per process (read-only: the result is shared)."""
    return _PARSED.load(version)


def protocol_cache(cache: ProtocolCache | None = None) -> ProtocolCache:
    """`cache`, or the process-wide one when the caller brings none."""
    return cache if cache is not None else _PARSED
