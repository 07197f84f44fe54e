"""A small trial built directly from model rows, for the interaction log, ingest and usage tests.

Rows are made directly (no protocol file, no journey) because these tests are about what
happens once a participant is allocated: the journey itself is tested elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session

from study.models import Allocation, Arm, Consent, Participant, Study
from study.pii import PiiVault

ENROLLED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Trial:
    """A study with arms `instruct`, `reflective` (assistants) and `control` (none)."""

    session: Session
    vault: PiiVault
    study: Study
    arms: dict[str, Arm] = field(default_factory=dict)
    sequence: int = 0

    def participant(
        self,
        code: str,
        *,
        arm: str = "reflective",
        status: str = "enrolled",
        store_content: bool = True,
        timezone: str = "UTC",
        enrolled_at: datetime = ENROLLED_AT,
        withdrawn_at: datetime | None = None,
    ) -> Participant:
        """An allocated participant with an active consent answering `store_chat_content`."""
        participant = Participant(
            study_id=self.study.id,
            code=code,
            status=status,
            timezone=timezone,
            enrolled_at=enrolled_at,
            withdrawn_at=withdrawn_at,
            created_at=enrolled_at,
        )
        self.session.add(participant)
        self.session.flush()
        self.sequence += 1
        self.session.add(
            Allocation(
                participant_id=participant.id,
                arm_id=self.arms[arm].id,
                scheme="permuted_blocks",
                sequence_number=self.sequence,
                allocated_at=enrolled_at,
            )
        )
        self.session.add(
            Consent(
                participant_id=participant.id,
                document_version="1.0",
                document_hash="0" * 64,
                options={"store_chat_content": store_content, "ema": False},
                signature_encrypted=self.vault.encrypt("A. Participant"),
                signed_at=enrolled_at,
                withdrawn_at=withdrawn_at,
            )
        )
        self.session.commit()
        return participant


def make_trial(session: Session, vault: PiiVault, slug: str = "trial") -> Trial:
    study = Study(slug=slug, title=f"Trial {slug}")
    session.add(study)
    session.flush()
    trial = Trial(session, vault, study)
    for key in ("instruct", "reflective", "control"):
        arm = Arm(study_id=study.id, key=key, name=key.title(), has_assistant=key != "control")
        session.add(arm)
        session.flush()
        trial.arms[key] = arm
    session.commit()
    return trial
