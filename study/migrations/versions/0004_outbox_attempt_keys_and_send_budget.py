"""outbox attempt keys and send budgets

Each send attempt gets a random key, committed before the provider is asked to send, so that a
message found stuck in "sending" after a crash can be looked up at the provider before any
resend. Per-channel token buckets live in the database so that a provider's rate limit holds
across every dispatcher on every host.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import study.models.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN rather than a batch operation: SQLite supports it for columns with a
    # constant default, and a batch would copy the whole outbox.
    op.add_column(
        "outbound_message",
        sa.Column(
            "attempt_key",
            sqlmodel.sql.sqltypes.AutoString(length=32),
            nullable=False,
            server_default="",
        ),
    )
    op.add_column(
        "outbound_message",
        sa.Column("attempt_started_at", study.models.types.UTCDateTime(), nullable=True),
    )
    op.create_index(
        "ix_outbound_message_attempt_key", "outbound_message", ["attempt_key"], unique=False
    )
    op.create_table(
        "send_budget",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", study.models.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel"),
    )


def downgrade() -> None:
    op.drop_table("send_budget")
    op.drop_index("ix_outbound_message_attempt_key", table_name="outbound_message")
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_column("attempt_started_at")
        batch_op.drop_column("attempt_key")
