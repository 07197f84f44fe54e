"""Assistant chat: conversations, turns, memory notes and participant goals

Each participant message is stored (encrypted) before the provider is called, so a timeout or
an error never loses it; memory notes and goals are written, edited and deleted by the
participant. Every row goes with its participant.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import study.models.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
Instant = study.models.types.UTCDateTime


def _participant() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["participant_id"], ["participant.id"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "chat_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("arm_id", sa.Integer(), nullable=False),
        sa.Column("key", String(length=36), nullable=False),
        sa.Column("started_at", Instant(), nullable=False),
        sa.Column("last_activity_at", Instant(), nullable=False),
        sa.Column("ended_at", Instant(), nullable=True),
        sa.ForeignKeyConstraint(["arm_id"], ["arm.id"]),
        _participant(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        "ix_chat_session_participant_open", "chat_session", ["participant_id", "ended_at"]
    )
    op.create_table(
        "chat_turn",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_session_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("key", String(length=36), nullable=False),
        sa.Column("status", String(length=16), nullable=False),
        sa.Column("message_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("reply_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("error", String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", Instant(), nullable=False),
        sa.Column("claimed_at", Instant(), nullable=True),
        sa.Column("answered_at", Instant(), nullable=True),
        sa.ForeignKeyConstraint(["chat_session_id"], ["chat_session.id"], ondelete="CASCADE"),
        _participant(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_chat_turn_participant_id", "chat_turn", ["participant_id"])
    op.create_index("ix_chat_turn_session", "chat_turn", ["chat_session_id", "id"])
    op.create_table(
        "memory_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("text_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("source", String(length=16), nullable=False),
        sa.Column("created_at", Instant(), nullable=False),
        sa.Column("updated_at", Instant(), nullable=False),
        _participant(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_memory_note_participant_id", "memory_note", ["participant_id"])
    op.create_table(
        "participant_goal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("text_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Instant(), nullable=False),
        sa.Column("updated_at", Instant(), nullable=False),
        _participant(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_participant_goal_participant_id", "participant_goal", ["participant_id"])


def downgrade() -> None:
    op.drop_index("ix_participant_goal_participant_id", table_name="participant_goal")
    op.drop_table("participant_goal")
    op.drop_index("ix_memory_note_participant_id", table_name="memory_note")
    op.drop_table("memory_note")
    op.drop_index("ix_chat_turn_session", table_name="chat_turn")
    op.drop_index("ix_chat_turn_participant_id", table_name="chat_turn")
    op.drop_table("chat_turn")
    op.drop_index("ix_chat_session_participant_open", table_name="chat_session")
    op.drop_table("chat_session")
