"""Comprehension checks, signing, re-consent, and which consent version a record belongs to.

A participant's *active* consent is their newest consent that has been neither superseded (by
signing a newer version) nor withdrawn. Signing again supersedes the active consent, so the
history of every version a participant agreed to is kept, one row per signature.

Rule for records: every piece of data is collected under the participant's active consent at
that moment. `Response.consent_version` stores it explicitly (`version_in_force` gives the value
to write); records without such a column (interactions, messages) are attributed by time with
`version_at`, since consents form an unbroken chain of [signed_at, superseded_at) intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlmodel import Session, col, select

from study import audit
from study.models import Consent, Participant
from study.pii import PiiVault
from study.protocol import Protocol

from .document import load_document

MAX_SIGNATURE_LENGTH = 200
# Participants in these states are taking part, so an amended consent document applies to them.
TAKING_PART = ("consented", "enrolled")
_MAY_SIGN = ("screening", "consented", "enrolled", "completed")


class ConsentError(ValueError):
    """A consent cannot be given or recorded as asked; the message says why."""


def check_comprehension(protocol: Protocol, answers: Mapping[str, str]) -> list[str]:
    """The ids of the protocol's comprehension questions answered wrongly or not at all.

    An empty list means the participant may go on to sign. Answers to unknown question ids are
    ignored rather than trusted.
    """
    return [
        question.id
        for question in protocol.model.consent.comprehension
        if str(answers.get(question.id, "")).strip() != question.correct
    ]


def current_consent(session: Session, participant: Participant) -> Consent | None:
    """The participant's active consent: the newest one neither superseded nor withdrawn."""
    return session.exec(
        select(Consent)
        .where(
            Consent.participant_id == participant.id,
            col(Consent.superseded_at).is_(None),
            col(Consent.withdrawn_at).is_(None),
        )
        .order_by(col(Consent.signed_at).desc(), col(Consent.id).desc())
        .limit(1)
    ).first()


def consent_history(session: Session, participant: Participant) -> list[Consent]:
    """Every consent the participant signed, oldest first."""
    return list(
        session.exec(
            select(Consent)
            .where(Consent.participant_id == participant.id)
            .order_by(col(Consent.signed_at), col(Consent.id))
        )
    )


def needs_reconsent(session: Session, participant: Participant, protocol: Protocol) -> bool:
    """Whether a participant taking part must sign the consent version now in force.

    True when their active consent is of another version than `protocol.model.consent.version`
    (or, abnormally, when they are taking part without any active consent). People still
    screening need a first consent, not a re-consent; withdrawn and completed participants are
    no longer asked anything.
    """
    if participant.status not in TAKING_PART:
        return False
    active = current_consent(session, participant)
    return active is None or active.document_version != protocol.model.consent.version


def version_in_force(session: Session, participant: Participant) -> str:
    """The consent version to record on data collected now (`Response.consent_version`).

    Raises ConsentError when the participant has no active consent: then nothing may be
    collected at all.
    """
    active = current_consent(session, participant)
    if active is None:
        raise ConsentError(f"participant {participant.code} has no active consent")
    return active.document_version


def version_at(session: Session, participant: Participant, at: datetime) -> str | None:
    """The consent version in force for `participant` at instant `at` (None if none was)."""
    for consent in reversed(consent_history(session, participant)):
        ended = consent.superseded_at
        if consent.signed_at <= at and (ended is None or at < ended):
            if consent.withdrawn_at is not None and at >= consent.withdrawn_at:
                return None
            return consent.document_version
    return None


def sign(
    session: Session,
    vault: PiiVault,
    *,
    participant: Participant,
    protocol: Protocol,
    signed_name: str,
    options: Mapping[str, bool],
    now: datetime,
    actor: str,
) -> Consent:
    """Record the participant's typed-name signature of the consent document now in force.

    The name is encrypted with the PII vault; the row also keeps the document's version and
    hash and the answer to each optional item. Optional items not in `options` count as
    refused, because consent must be given, never assumed. A participant who is still
    screening becomes `consented`; signing again (re-consent) supersedes the active consent and
    leaves the participant's status as it is. Audited as `consent.sign` (or `consent.resign`)
    without the name. Adds to the caller's session; the caller commits.
    """
    name = " ".join(signed_name.split())
    if not name:
        raise ConsentError("type your full name to sign")
    if len(name) > MAX_SIGNATURE_LENGTH:
        raise ConsentError(f"the name must have at most {MAX_SIGNATURE_LENGTH} characters")
    if participant.status not in _MAY_SIGN:
        raise ConsentError(
            f"participant {participant.code} is {participant.status} and cannot sign a consent"
        )
    chosen = _options(protocol, options)
    document = load_document(protocol)

    previous = current_consent(session, participant)
    if previous is not None:
        previous.superseded_at = now
        session.add(previous)
    consent = Consent(
        participant_id=participant.id,
        document_version=document.version,
        document_hash=document.sha256,
        options=chosen,
        signature_encrypted=vault.encrypt(name),
        signed_at=now,
    )
    session.add(consent)
    before_status = participant.status
    if participant.status == "screening":
        participant.status = "consented"
        session.add(participant)
    session.flush()
    audit.record(
        session,
        actor,
        "consent.resign" if previous is not None else "consent.sign",
        entity_type="consent",
        entity_id=consent.id,
        before=None if previous is None else consent_state(previous),
        after=consent_state(consent),
        details={
            "participant": participant.code,
            "version": consent.document_version,
            "document_sha256": consent.document_hash,
            "options": chosen,
            "supersedes": previous.id if previous is not None else None,
            "status": [before_status, participant.status],
        },
        at=now,
    )
    return consent


def consent_state(consent: Consent) -> dict:
    """What the audit log hashes about a consent: everything but the signature itself."""
    return {
        "id": consent.id,
        "participant_id": consent.participant_id,
        "document_version": consent.document_version,
        "document_hash": consent.document_hash,
        "options": consent.options,
        "signed_at": consent.signed_at,
        "superseded_at": consent.superseded_at,
        "withdrawn_at": consent.withdrawn_at,
    }


def _options(protocol: Protocol, options: Mapping[str, bool]) -> dict[str, bool]:
    known = [item.id for item in protocol.model.consent.optional_items]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConsentError(f"unknown optional consent item(s): {', '.join(unknown)}")
    for key, value in options.items():
        if not isinstance(value, bool):
            raise ConsentError(f"optional item {key!r} must be answered yes or no")
    return {key: bool(options.get(key, False)) for key in known}
