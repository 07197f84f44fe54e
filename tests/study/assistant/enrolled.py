"""The example study with its assistants at a given endpoint, and enrolled participants of a
chosen arm with or without consent to store chat text (shared by the assistant and chat tests)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from study.models import Allocation, Arm, Consent, EnrollmentProgress, Participant, Study
from study.protocol import Protocol, load_protocol

EXAMPLES = Path(__file__).parents[3] / "examples"
EXAMPLE_URL = "base_url: http://127.0.0.1:8089/v1"


def protocol_using(examples_copy: Path, base_url: str) -> Protocol:
    """The example protocol, from a private copy of examples/, with its assistants at
    `base_url`."""
    source = examples_copy / "protocols/assistant-flourishing-rct.yaml"
    text = source.read_text()
    assert EXAMPLE_URL in text
    source.write_text(text.replace(EXAMPLE_URL, f"base_url: {base_url}"))
    return load_protocol(source)


def copy_examples(target: Path) -> Path:
    shutil.copytree(EXAMPLES, target / "examples")
    return target / "examples"


def enroll(
    session: Session,
    protocol: Protocol,
    arm_key: str,
    *,
    code: str,
    now: datetime,
    store_chat_content: bool = False,
) -> Participant:
    """An enrolled participant of `arm_key` with a signed consent (chat text stored or not)."""
    study = session.exec(select(Study).where(Study.slug == protocol.slug)).one()
    arm = session.exec(select(Arm).where(Arm.study_id == study.id, Arm.key == arm_key)).one()
    participant = Participant(
        study_id=study.id,
        code=code,
        status="enrolled",
        timezone="Europe/London",
        created_at=now - timedelta(days=2),
        enrolled_at=now - timedelta(days=1),
    )
    session.add(participant)
    session.flush()
    session.add_all(
        [
            EnrollmentProgress(participant_id=participant.id, screened_at=now - timedelta(days=2)),
            Consent(
                participant_id=participant.id,
                document_version=protocol.model.consent.version,
                document_hash="0" * 64,
                options={"store_chat_content": store_chat_content, "ema": False},
                signature_encrypted=b"signature",
                signed_at=now - timedelta(days=2),
            ),
            Allocation(
                participant_id=participant.id,
                arm_id=arm.id,
                scheme="permuted_blocks",
                sequence_number=participant.id,
                allocated_at=now - timedelta(days=1),
            ),
        ]
    )
    session.commit()
    return participant
