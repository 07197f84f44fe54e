"""Looking at a whole database at once: row counts of every table, the audit chain."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

import study.models  # noqa: F401  (registers every table in the metadata)
from study import audit


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows in each of Flourish's tables."""
    with engine.connect() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in sorted(SQLModel.metadata.tables.items())
        }


def audit_problems(engine: Engine) -> list:
    """What `flourish audit verify` would complain about (empty when the chain is intact)."""
    with Session(engine) as session:
        return audit.verify_chain(list(audit.events(session)))
