"""Longer instrument versions on responses

`response.instrument_version` holds the instrument definition's `version`, free text such as
"7 items (Thomas et al. 2021); one item from each of the 7 SD-WISE-28 subscales" (78
characters). At 32 characters PostgreSQL refused to store answers to BPNSFS and SD-WISE-7 (SQLite
does not enforce lengths, so only PostgreSQL failed). Definitions are now limited to 200.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("response") as batch:
        batch.alter_column(
            "instrument_version",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=32),
            type_=sqlmodel.sql.sqltypes.AutoString(length=200),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("response") as batch:
        batch.alter_column(
            "instrument_version",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
            type_=sqlmodel.sql.sqltypes.AutoString(length=32),
            existing_nullable=False,
        )
