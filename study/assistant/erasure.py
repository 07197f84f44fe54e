"""Erasing what the chat keeps of a participant, for withdrawal and data-subject erasure.

Kept apart from `turns` so that `consent` can call it without importing the chat machinery
(which imports enrollment, which imports consent).
"""

from __future__ import annotations

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col

from ..models import ChatTurn, MemoryNote, Participant, ParticipantGoal


def erase_chat_texts(session: Session, participant: Participant) -> dict[str, int]:
    """Erase every text of the chat's own tables for this participant: messages and replies,
    memory notes and goals (the interaction log's copy is consent.erase_chat_content's).
    Called by `consent.subject.erase_chat_content`; counts by kind."""
    pid = participant.id
    blanked = session.execute(
        update(ChatTurn)
        .where(
            col(ChatTurn.participant_id) == pid,
            or_(
                col(ChatTurn.message_encrypted).isnot(None),
                col(ChatTurn.reply_encrypted).isnot(None),
            ),
        )
        .values(message_encrypted=None, reply_encrypted=None)
    ).rowcount
    counts = {"chat_turns": blanked}
    for name, model in (("memory_notes", MemoryNote), ("goals", ParticipantGoal)):
        rows = delete(model).where(col(model.participant_id) == pid)
        counts[name] = session.execute(rows).rowcount
    session.flush()
    return counts
