"""The assistant chat: conversations, each participant message and its reply, and what the
participant keeps for the assistant (memory notes and their own goals).

`Interaction` (interactions.py) is the research record of every turn. These tables are what the
chat needs to work: the participant's message is written here, encrypted, before the provider is
called, so that a timeout or an error never loses it; the text of a conversation is kept only
while that conversation is open (see study/assistant/turns.py). All text is encrypted with
`FLOURISH_PII_KEY`; every row goes with its participant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow

TURN_STATUSES = ("pending", "answering", "answered", "failed")
NOTE_SOURCES = ("participant", "chat")


class ChatSession(SQLModel, table=True):
    """One conversation with the assistant; `key` is the `session_id` in the interaction log."""

    __tablename__ = "chat_session"
    __table_args__ = (Index("ix_chat_session_participant_open", "participant_id", "ended_at"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", ondelete="CASCADE")
    arm_id: int = Field(foreign_key="arm.id")
    key: str = Field(max_length=36, unique=True)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_activity_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ChatTurn(SQLModel, table=True):
    """A participant's message and the assistant's reply to it.

    `pending` (stored, not yet sent), `answering` (a request is in flight since `claimed_at`),
    `answered`, or `failed` (`error` says why; the participant may retry). The texts are
    blanked when the conversation closes; the interaction log keeps what consent allows.
    """

    __tablename__ = "chat_turn"
    __table_args__ = (Index("ix_chat_turn_session", "chat_session_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_session_id: int = Field(foreign_key="chat_session.id", ondelete="CASCADE")
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    # The interaction log's event ids are `<key>.user` and `<key>.assistant`.
    key: str = Field(max_length=36, unique=True)
    status: str = Field(default="pending", max_length=16)
    message_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    reply_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    error: str = Field(default="", max_length=32)
    attempts: int = 0
    sent_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MemoryNote(SQLModel, table=True):
    """Something the participant wants a longitudinal assistant to remember. They see, edit and
    delete every note; `source` says whether they wrote it or kept it from a chat."""

    __tablename__ = "memory_note"

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    text_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    source: str = Field(default="participant", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ParticipantGoal(SQLModel, table=True):
    """A goal the participant wrote for themselves, which the assistant is asked to support."""

    __tablename__ = "participant_goal"

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    text_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
