"""SMS survey conversations

Where each participant answering an occasion by text message has got to: instrument and item,
deadline, status, and the last reply given (so a provider's retry is answered the same way).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import study.models.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_conversation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("occasion_id", sa.Integer(), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("instrument_index", sa.Integer(), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", study.models.types.UTCDateTime(), nullable=False),
        sa.Column("last_activity_at", study.models.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", study.models.types.UTCDateTime(), nullable=False),
        sa.Column("ended_at", study.models.types.UTCDateTime(), nullable=True),
        sa.Column("invalid_replies", sa.Integer(), nullable=False),
        sa.Column("last_inbound_message_id", sa.Integer(), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_inbound_message_id"], ["inbound_message.id"], ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["occasion_id"], ["occasion.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["participant_id"], ["participant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("occasion_id"),
    )
    op.create_index(
        "ix_sms_conversation_participant_status",
        "sms_conversation",
        ["participant_id", "status"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_sms_conversation_participant_status", table_name="sms_conversation")
    op.drop_table("sms_conversation")
