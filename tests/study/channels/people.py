"""Plain helpers that put the example study and its participants in a database, for the
channel tests and the webhook tests alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from study.models import ContactPoint, Occasion, OutboundMessage, Participant
from study.pii import PiiVault
from study.protocol import load_protocol
from study.protocol.registry import Registration, register_protocol

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"


def register_example(session: Session) -> Registration:
    registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
    session.commit()
    return registration


def enrolled_with_phone(
    session: Session,
    registration: Registration,
    vault: PiiVault,
    *,
    code: str,
    phone: str,
    now: datetime,
) -> Participant:
    """An enrolled participant with an SMS number, an open occasion and a pending invitation."""
    participant = Participant(
        study_id=registration.study.id,
        code=code,
        status="enrolled",
        protocol_version_id=registration.version.id,
        timezone="Europe/London",
        preferred_channel="sms",
        created_at=now - timedelta(days=2),
        enrolled_at=now - timedelta(days=1),
    )
    session.add(participant)
    session.flush()
    session.add(
        ContactPoint(
            participant_id=participant.id,
            kind="sms",
            value_encrypted=vault.encrypt(phone),
            lookup_hash=vault.lookup_hash("sms", phone),
        )
    )
    occasion = Occasion(
        participant_id=participant.id,
        protocol_version_id=registration.version.id,
        schedule_key="weekly",
        wave=1,
        kind="wave",
        instruments=["who5"],
        due_at=now + timedelta(days=1),
        closes_at=now + timedelta(days=2),
    )
    session.add(occasion)
    session.flush()
    session.add(
        OutboundMessage(
            participant_id=participant.id,
            occasion_id=occasion.id,
            channel="sms",
            purpose="invitation",
            send_after=occasion.due_at,
            expires_at=occasion.closes_at,
        )
    )
    session.commit()
    return participant
