"""Our own record of SMS opt-outs, mirroring the carrier's.

Carriers and Twilio block texts to a number that replied STOP; we mirror that on every SMS
contact point with the number (`ContactPoint.opted_out_at`) so that the dispatcher never tries,
coordinators see why nobody is texted, and START undoes it. Opt-out is a property of the number,
not of one participant: a number shared by two participant records is opted out for both.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from study import audit
from study.models import ContactPoint, Participant


def opt_out(
    session: Session, *, lookup_hash: str, now: datetime, actor: str, source: str
) -> list[ContactPoint]:
    """Mark every SMS contact point with this number opted out; returns those that changed."""
    return _set(session, lookup_hash, now, actor, source, opted_out=True)


def opt_in(
    session: Session, *, lookup_hash: str, now: datetime, actor: str, source: str
) -> list[ContactPoint]:
    """Clear the opt-out of every SMS contact point with this number; returns those changed."""
    return _set(session, lookup_hash, now, actor, source, opted_out=False)


def opt_out_participant(
    session: Session, participant_id: int, *, now: datetime, source: str
) -> list[ContactPoint]:
    """Mirror a provider's refusal (Twilio 21610) for a participant's SMS number: the number
    is opted out wherever it appears. For the dispatcher's use on `PermanentSendError.opted_out`.
    """
    contact = session.exec(
        select(ContactPoint).where(
            ContactPoint.participant_id == participant_id, ContactPoint.kind == "sms"
        )
    ).first()
    if contact is None:
        return []
    return opt_out(
        session, lookup_hash=contact.lookup_hash, now=now, actor="system:twilio", source=source
    )


def is_opted_out(session: Session, participant_id: int) -> bool:
    """True when the participant's SMS number has opted out."""
    return (
        session.exec(
            select(ContactPoint.id).where(
                ContactPoint.participant_id == participant_id,
                ContactPoint.kind == "sms",
                col(ContactPoint.opted_out_at).is_not(None),
            )
        ).first()
        is not None
    )


def _set(
    session: Session, lookup_hash: str, now: datetime, actor: str, source: str, *, opted_out: bool
) -> list[ContactPoint]:
    if not lookup_hash:
        return []
    contacts = session.exec(
        select(ContactPoint).where(
            ContactPoint.kind == "sms", ContactPoint.lookup_hash == lookup_hash
        )
    ).all()
    changed = []
    for contact in contacts:
        if (contact.opted_out_at is not None) == opted_out:
            continue
        before = {"opted_out_at": contact.opted_out_at}
        contact.opted_out_at = now if opted_out else None
        session.add(contact)
        participant = session.get(Participant, contact.participant_id)
        audit.record(
            session,
            actor,
            "contact.opt_out" if opted_out else "contact.opt_in",
            entity_type="contact_point",
            entity_id=contact.id,
            before=before,
            after={"opted_out_at": contact.opted_out_at},
            details={
                "participant": participant.code if participant else None,
                "kind": "sms",
                "source": source,
            },
            at=now,
        )
        changed.append(contact)
    session.flush()
    return changed
