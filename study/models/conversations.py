"""SMS survey conversations: where a participant is in an occasion answered by text message.

One row per occasion answered by SMS. The dispatcher opens it when it sends the invitation that
carries the first question; each valid reply moves `instrument_index`/`item_index` on to the
next unanswered item. The answers themselves are `Response`/`ItemResponse` rows; this table only
holds the conversation's position, its deadline and the last reply we gave (so that a provider's
retry of the same inbound message is answered identically).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow

CONVERSATION_STATUSES = ("active", "completed", "expired")


class SmsConversation(SQLModel, table=True):
    __tablename__ = "sms_conversation"
    __table_args__ = (Index("ix_sms_conversation_participant_status", "participant_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", ondelete="CASCADE")
    # Erasure deletes a participant's occasions; their conversations go with them.
    occasion_id: int = Field(foreign_key="occasion.id", unique=True, ondelete="CASCADE")
    language: str = Field(default="en", max_length=16)
    instrument_index: int = 0
    item_index: int = 0
    status: str = Field(default="active", max_length=16)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When we last asked a question (invitation, reminder or the reply to an answer): a reply
    # goes to the active conversation that asked most recently.
    last_activity_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    invalid_replies: int = 0
    last_inbound_message_id: int | None = Field(
        default=None, foreign_key="inbound_message.id", ondelete="SET NULL"
    )
    last_reply: str = Field(default="", sa_column=Column(Text, nullable=False))
