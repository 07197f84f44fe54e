"""`flourish export`: the dataset of a study with participants, in every format, audited."""

from __future__ import annotations

import getpass
import hashlib
import json

import pyreadstat
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from analysis.exports import read_csv
from study import enrollment
from study.models import AuditEvent, Occasion
from study.pii import PiiVault
from study.protocol.registry import register_protocol
from tests.analysis.conftest import answer, small_protocol
from tests.study.test_enrollment import ENVIRON, ready_to_enroll

SLUG = "assistant-flourishing-rct"


def enrolled_with_baseline(engine, clock, count: int) -> list[str]:
    """`count` participants enrolled through the domain steps, each answering the baseline."""
    vault = PiiVault(Fernet.generate_key().decode())
    with Session(engine, expire_on_commit=False) as session:
        register_protocol(session, small_protocol(), actor="test")
        session.commit()
        opened = enrollment.open_study(session, SLUG)
        codes = []
        for n in range(count):
            journey = ready_to_enroll(session, vault, opened, clock)
            enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
            session.commit()
            baseline = session.exec(
                select(Occasion).where(
                    Occasion.participant_id == journey.participant.id,
                    Occasion.schedule_key == "baseline",
                )
            ).one()
            answer(session, baseline.id, clock.now(), lambda _i, _s, n=n: 1 + n)
            codes.append(journey.participant.code)
    return codes


def test_export_writes_every_format_and_is_audited(flourish, sqlite_engine, clock, tmp_path):
    codes = enrolled_with_baseline(sqlite_engine, clock, 2)
    out = tmp_path / "export"
    result = flourish("export", SLUG, "--format", "all", "--out", str(out))
    assert result.exit_code == 0, result.output
    csv_path = out / "data" / "study-assistantflourishingrct_data.csv"
    data = read_csv(csv_path)
    assert set(data["participant"]) == set(codes)
    baseline = data[data["occasion"] == "baseline"].set_index("participant")
    # WHO-5 items all 1 -> raw 5 -> percentage 20; all 2 -> 40 (raw x 4).
    assert baseline.loc[codes[0], "who5_percentage"] == 20.0
    assert baseline.loc[codes[1], "who5_percentage"] == 40.0
    sha = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    assert f"snapshot sha256 {sha}" in result.output
    for name in (f"{SLUG}.parquet", f"{SLUG}.sav", f"{SLUG}.dta", "codebook.csv", "codebook.md",
                 "datapackage.json", "dataset_description.json"):  # fmt: skip
        assert (out / name).exists(), name
    _, meta = pyreadstat.read_sav(str(out / f"{SLUG}.sav"), metadataonly=True)
    assert meta.number_rows == len(data)
    with Session(sqlite_engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "data.export")).all()
    assert event.actor == f"cli:{getpass.getuser()}"
    assert event.details["snapshot_sha256"] == sha
    assert event.details["formats"] == ["csv", "parquet", "sav", "dta"]
    assert (event.details["rows"], event.details["participants"]) == (len(data), 2)
    package = json.loads((out / "datapackage.json").read_text())
    assert package["flourish"]["snapshot_sha256"] == sha


def test_one_format_still_writes_the_csv_codebook_and_metadata(flourish, sqlite_engine, clock,
                                                               tmp_path):  # fmt: skip
    enrolled_with_baseline(sqlite_engine, clock, 1)
    out = tmp_path / "export"
    assert flourish("export", SLUG, "--format", "dta", "--out", str(out)).exit_code == 0
    assert (out / f"{SLUG}.dta").exists() and not (out / f"{SLUG}.sav").exists()
    assert (out / "codebook.md").exists() and (out / "dataset_description.json").exists()


def test_an_unknown_study_is_refused_and_nothing_is_audited(flourish, sqlite_engine, tmp_path):
    result = flourish("export", "no-such-study", "--out", str(tmp_path / "x"))
    assert result.exit_code == 1 and "there is no study 'no-such-study'" in result.output
    with Session(sqlite_engine) as session:
        assert (
            session.exec(select(AuditEvent).where(AuditEvent.action == "data.export")).first()
            is None
        )
