"""enrollment progress and invitations

The participant journey records which steps each participant has completed (screening answers
of eligible people, comprehension, baseline stratification measures, contacts, preferences), and
studies may hand out single-use invitation codes, of which only a keyed hash is stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import study.models.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('enrollment_progress',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('screening_answers', sa.JSON(), nullable=False),
    sa.Column('screened_at', study.models.types.UTCDateTime(), nullable=False),
    sa.Column('comprehension_attempts', sa.Integer(), nullable=False),
    sa.Column('comprehension_passed_at', study.models.types.UTCDateTime(), nullable=True),
    sa.Column('baseline', sa.JSON(), nullable=False),
    sa.Column('baseline_at', study.models.types.UTCDateTime(), nullable=True),
    sa.Column('contacts_at', study.models.types.UTCDateTime(), nullable=True),
    sa.Column('preferences_at', study.models.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('participant_id')
    )
    op.create_table('invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', study.models.types.UTCDateTime(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('used_at', study.models.types.UTCDateTime(), nullable=True),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], ),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code_hash')
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_study_id'), ['study_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_study_id'))

    op.drop_table('invitation')
    op.drop_table('enrollment_progress')
