"""The rehearsal's last act: the preregistered analysis and its report, as an analyst runs them.

The example preregistration is copied into the output directory and locked there before the
first participant arrives (a confirmatory analysis needs a lock that predates the data); after
the timeline, the dataset is assembled from the database and `analysis.report.write_report`
writes report.html, report.pdf and the replication bundle next to it.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from study.db import unit_of_work
from study.models import Study
from study.protocol.registry import current_version, load_version

from .protocol import EXAMPLE_PREREGISTRATION

ACTOR = "rehearsal"


def lock_preregistration(engine: Engine, out_dir: Path, now: datetime) -> Path:
    """Copy the example preregistration into `out_dir` and lock it (audited); its path."""
    from analysis.prereg_lock import lock

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "preregistration.yaml"
    shutil.copyfile(EXAMPLE_PREREGISTRATION, path)
    with unit_of_work(engine) as session:
        lock(session, path, ACTOR, now=now)
    return path


def write_study_report(engine: Engine, slug: str, prereg: Path, out_dir: Path):
    """Assemble the dataset of study `slug` and write the report into `out_dir/report`."""
    from analysis.dataset import assemble
    from analysis.report import write_report

    with Session(engine) as session:
        study = session.exec(select(Study).where(Study.slug == slug)).one()
        data = assemble(session, study.id)
        protocol = load_version(current_version(session, study.id))
    files = write_report(
        data, prereg, out_dir / "report", protocol=protocol, source="flourish rehearse"
    )
    return data, files
