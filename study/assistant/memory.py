"""A participant's longitudinal memory: notes they keep for the assistant, and can see, edit and
delete at any time.

Notes are written by the participant, or kept from a chat when they choose "Remember this"
(`source="chat"`); the assistant never writes one itself. They are encrypted at rest and sent to
the model only for arms with `memory: longitudinal`. The same store, with other limits, holds
the participant's goals (goals.py). Every change is audited without its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from .. import audit
from ..models import MemoryNote, Participant
from ..pii import PiiVault


class TextRefused(ValueError):
    """A note or goal that cannot be saved as written; the message is for the participant."""


@dataclass(frozen=True)
class Entry:
    """A note or goal as the participant sees it."""

    id: int
    text: str
    source: str
    created_at: datetime
    updated_at: datetime


class ParticipantTexts:
    """Short texts a participant owns (memory notes, goals): list, add, edit, delete.

    Every method takes the participant whose texts they are; a row of anyone else is treated as
    not existing (LookupError), so one participant can never read or change another's.
    """

    def __init__(self, model, *, noun: str, max_count: int, max_length: int) -> None:
        self.model = model
        self.noun = noun
        self.max_count = max_count
        self.max_length = max_length

    def entries(self, session: Session, vault: PiiVault, participant: Participant) -> list[Entry]:
        """The participant's texts, oldest first."""
        rows = session.exec(
            select(self.model)
            .where(self.model.participant_id == participant.id)
            .order_by(col(self.model.created_at), col(self.model.id))
        )
        return [self._entry(row, vault) for row in rows]

    def texts(self, session: Session, vault: PiiVault, participant: Participant) -> list[str]:
        return [entry.text for entry in self.entries(session, vault, participant)]

    def get(self, session: Session, vault: PiiVault, participant: Participant, entry_id: int):
        return self._entry(self._own(session, participant, entry_id), vault)

    def add(
        self,
        session: Session,
        vault: PiiVault,
        participant: Participant,
        text: str,
        *,
        now: datetime,
        source: str = "participant",
    ) -> Entry:
        """Save a new text; TextRefused if empty, too long or one too many."""
        text = self._clean(text)
        count = session.exec(
            select(func.count()).where(self.model.participant_id == participant.id)
        ).one()
        if count >= self.max_count:
            raise TextRefused(
                f"You can keep up to {self.max_count} {self.noun}s. Delete one to add another."
            )
        values = {"participant_id": participant.id, "text_encrypted": vault.encrypt(text),
                  "created_at": now, "updated_at": now}
        if hasattr(self.model, "source"):
            values["source"] = source
        row = self.model(**values)
        session.add(row)
        session.flush()
        self._audit(session, participant, "add", row.id, now)
        return self._entry(row, vault)

    def edit(
        self,
        session: Session,
        vault: PiiVault,
        participant: Participant,
        entry_id: int,
        text: str,
        *,
        now: datetime,
    ) -> Entry:
        row = self._own(session, participant, entry_id)
        row.text_encrypted = vault.encrypt(self._clean(text))
        row.updated_at = now
        session.add(row)
        session.flush()
        self._audit(session, participant, "edit", row.id, now)
        return self._entry(row, vault)

    def delete(
        self, session: Session, participant: Participant, entry_id: int, *, now: datetime
    ) -> None:
        row = self._own(session, participant, entry_id)
        session.delete(row)
        session.flush()
        self._audit(session, participant, "delete", entry_id, now)

    def _own(self, session: Session, participant: Participant, entry_id: int):
        row = session.get(self.model, entry_id)
        if row is None or row.participant_id != participant.id:
            raise LookupError(f"no {self.noun} {entry_id} of this participant")
        return row

    def _clean(self, text: str) -> str:
        text = (text or "").strip()
        if not text:
            raise TextRefused(f"Please write your {self.noun} first.")
        if len(text) > self.max_length:
            raise TextRefused(
                f"Please keep each {self.noun} to {self.max_length} characters "
                f"(this one has {len(text)})."
            )
        return text

    def _entry(self, row, vault: PiiVault) -> Entry:
        return Entry(
            id=row.id,
            text=vault.decrypt(row.text_encrypted),
            source=getattr(row, "source", "participant"),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _audit(self, session, participant, verb: str, entry_id: int, now: datetime) -> None:
        # The text stays out of the audit log: it is the participant's, not the record's.
        audit.record(
            session,
            f"participant:{participant.code}",
            f"assistant.{self.model.__tablename__}.{verb}",
            entity_type=self.model.__tablename__,
            entity_id=entry_id,
            at=now,
        )


notes = ParticipantTexts(MemoryNote, noun="note", max_count=50, max_length=500)
