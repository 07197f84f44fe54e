"""The long-format analysis dataset, assembled from a study run through the real enrollment,
schedule and survey functions. On SQLite and PostgreSQL.

Expected scores follow the instruments' published keys (WHO-5 raw = sum of five 0-5 items,
percentage = raw x 4; SWLS = sum of five 1-7 items), and expected times follow the calendar
(Europe/London is on GMT until 29 March 2026, then BST)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event
from sqlmodel import select

from analysis.dataset import USAGE_COLUMNS, assemble
from study import enrollment
from study.assistant.log import record_interaction
from study.models import ContactPoint, Occasion
from study.pii import PiiVault
from study.schedule import extend_horizon

from .conftest import answer

ENROLLED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the clock fixture's instant
CONTRACT = ["participant", "arm", "stratum_wellbeing", "stratum_age_band", "occasion", "wave",
            "days", "week", "consent_version", "status", "completed"]  # fmt: skip


def occasion_of(session, participant, key: str, wave: int) -> Occasion:
    return session.exec(
        select(Occasion).where(
            Occasion.participant_id == participant.id,
            Occasion.schedule_key == key,
            Occasion.wave == wave,
        )
    ).one()


def constant(values: dict):
    """Answer every item of an instrument with the value given for it."""
    return lambda instrument_id, scale: values.get(instrument_id)


@pytest.fixture
def run(session, small_study, clock):
    """Three participants: A answers everything, B answers and then withdraws after week 1,
    C leaves the baseline half done (WHO-5 page saved, SWLS not)."""
    a, b, c = (small_study().participant for _ in range(3))
    now = clock.now()
    # Enrollment plans two weeks ahead; the scheduler's horizon task plans the rest.
    extend_horizon(session, now, horizon=timedelta(weeks=30))
    session.commit()
    answer(
        session, occasion_of(session, a, "baseline", 0).id, now, constant({"who5": 3, "swls": 5})
    )
    answer(
        session, occasion_of(session, b, "baseline", 0).id, now, constant({"who5": 1, "swls": 2})
    )
    answer(session, occasion_of(session, c, "baseline", 0).id, now, constant({"who5": 2}))
    clock.set(datetime(2026, 3, 9, 19, 30, tzinfo=UTC))  # week 1 is due at 19:00 London time
    answer(session, occasion_of(session, a, "weekly", 1).id, clock.now(), constant({"who5": 4}))
    answer(session, occasion_of(session, b, "weekly", 1).id, clock.now(), constant({"who5": 2}))
    journey = enrollment.load_journey(session, b.code)
    enrollment.withdraw(session, journey, now=clock.now(), reason="moving abroad")
    session.commit()
    return {"a": a, "b": b, "c": c, "study_id": small_study.study_id}


def row(data: pd.DataFrame, participant, occasion: str, wave: int) -> pd.Series:
    [index] = data.index[
        (data["participant"] == participant.code)
        & (data["occasion"] == occasion)
        & (data["wave"] == wave)
    ]
    return data.loc[index]


def test_one_row_per_participant_and_non_ema_occasion_in_contract_order(session, run):
    data = assemble(session, run["study_id"])
    assert list(data.columns[: len(CONTRACT)]) == CONTRACT
    assert list(data.columns[-len(USAGE_COLUMNS) :]) == list(USAGE_COLUMNS)
    # baseline, 12 weekly waves, weeks 6, 12 and 24; the EMA is not a measurement occasion
    assert data.groupby("participant").size().to_dict() == {
        p.code: 16 for p in (run["a"], run["b"], run["c"])
    }
    assert "ema_week_1" not in set(data["occasion"])
    assert {"who5_raw", "who5_percentage", "swls_total"} <= set(data.columns)
    assert data["participant"].is_monotonic_increasing


def test_scores_follow_the_published_keys_and_are_missing_unless_complete(session, run):
    data = assemble(session, run["study_id"])
    a, b, c = run["a"], run["b"], run["c"]
    baseline = row(data, a, "baseline", 0)
    assert (baseline["who5_raw"], baseline["who5_percentage"], baseline["swls_total"]) == (
        15.0,
        60.0,
        25.0,
    )
    assert row(data, b, "baseline", 0)[["who5_percentage", "swls_total"]].tolist() == [20.0, 10.0]
    assert row(data, a, "weekly", 1)["who5_percentage"] == 80.0
    assert row(data, b, "weekly", 1)["who5_percentage"] == 40.0
    half_done = row(data, c, "baseline", 0)
    assert half_done["status"] == "partial" and not half_done["completed"]
    assert math.isnan(half_done["who5_percentage"]) and math.isnan(half_done["swls_total"])
    not_yet = row(data, a, "weekly", 2)
    assert not not_yet["completed"] and math.isnan(not_yet["who5_percentage"])
    # Weekly waves do not administer SWLS: missing, not zero.
    assert math.isnan(row(data, a, "weekly", 1)["swls_total"])


def test_time_since_enrollment_follows_the_local_calendar(session, run):
    data = assemble(session, run["study_id"])
    a = run["a"]
    assert row(data, a, "baseline", 0)["days"] == 0.0
    week1 = row(data, a, "weekly", 1)  # 9 March 19:00 GMT
    assert week1["days"] == pytest.approx(7 + 10 / 24)
    assert week1["week"] == pytest.approx(week1["days"] / 7)
    week4 = row(data, a, "weekly", 4)  # 30 March 19:00 BST = 18:00 UTC
    assert week4["days"] == pytest.approx(28 + 9 / 24)


def test_strata_arm_and_consent_come_from_allocation_and_consent(session, run):
    data = assemble(session, run["study_id"])
    for participant in (run["a"], run["b"], run["c"]):
        rows = data[data["participant"] == participant.code]
        arm = enrollment.arm_of(session, participant).key
        assert set(rows["arm"]) == {arm}
        # Baseline WHO-5 of the enrollment journey: raw 10, below the cut point 13; age 29.
        assert set(rows["stratum_wellbeing"]) == {"low"}
        assert set(rows["stratum_age_band"]) == {"under_35"}
        assert set(rows["consent_version"]) == {"1.0"}


def test_withdrawn_participants_are_flagged_or_left_out(session, run):
    data = assemble(session, run["study_id"])
    b = data[data["participant"] == run["b"].code]
    assert (
        b["withdrawn"].all() and not data[data["participant"] != run["b"].code]["withdrawn"].any()
    )
    assert row(data, run["b"], "weekly", 2)["status"] == "cancelled"
    without = assemble(session, run["study_id"], include_withdrawn=False)
    assert run["b"].code not in set(without["participant"])
    assert len(without) == 32


def test_as_of_keeps_only_occasions_due_by_then(session, run):
    data = assemble(session, run["study_id"], as_of=datetime(2026, 3, 10, tzinfo=UTC))
    assert sorted(set(zip(data["occasion"], data["wave"], strict=True))) == [
        ("baseline", 0),
        ("weekly", 1),
    ]


def test_no_contact_detail_reaches_the_dataset(session, run):
    data = assemble(session, run["study_id"])
    phone_digits = "7700900123"
    text = data.astype(str).to_csv()
    assert phone_digits not in text and "@" not in text
    assert session.exec(select(ContactPoint)).first() is not None  # there were contacts to leak


def chat(session, participant, session_id: str, *turns: tuple[str, datetime]) -> None:
    """Turns of one chat session, recorded through the interaction log."""
    vault = PiiVault(Fernet.generate_key().decode())
    for n, (role, at) in enumerate(turns):
        record_interaction(
            session,
            vault=vault,
            study_id=participant.study_id,
            participant=participant,
            event_id=f"{participant.code}-{session_id}-{n}",
            session_id=session_id,
            role=role,
            occurred_at=at,
            source="ingest",
        )
    session.commit()


def test_usage_covers_the_7_days_before_each_occasion(session, run):
    a = run["a"]
    day = lambda d, h, m=0: datetime(2026, 3, d, h, m, tzinfo=UTC)  # noqa: E731
    # Wednesday 10:00 London: 2 participant turns, gaps of 1 and 2 minutes.
    chat(
        session,
        a,
        "s1",
        ("user", day(4, 10)),
        ("assistant", day(4, 10, 1)),
        ("user", day(4, 10, 3)),
    )
    # Saturday 02:00 London (night): 2 turns 10 minutes apart, a gap capped at 5 minutes.
    chat(session, a, "s2", ("user", day(7, 2)), ("user", day(7, 2, 10)))
    # Monday 20:00, an hour after week 1 was due: counts for week 2.
    chat(session, a, "s3", ("user", day(9, 20)))
    data = assemble(session, run["study_id"])
    baseline = row(data, a, "baseline", 0)
    assert baseline["usage_sessions"] == 0 and math.isnan(baseline["usage_night_share"])
    week1 = row(data, a, "weekly", 1)
    assert week1[list(USAGE_COLUMNS)].tolist() == [2.0, 4.0, 8.0, 0.5, 4.0]
    week2 = row(data, a, "weekly", 2)
    assert week2[list(USAGE_COLUMNS)].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    never = row(data, run["c"], "weekly", 1)
    assert never["usage_sessions"] == 0 and math.isnan(never["usage_mean_session_minutes"])


def test_a_few_queries_whatever_the_number_of_participants(session, run, small_study):
    statements = []

    def count(*args):
        statements.append(args[2])

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        assemble(session, run["study_id"])
        few = len(statements)
        small_study()
        statements.clear()
        assemble(session, run["study_id"])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == few <= 8


def test_an_unknown_study_is_an_error(session):
    from analysis.dataset import DatasetError

    with pytest.raises(DatasetError, match="no study with id 999"):
        assemble(session, 999)


def test_an_empty_study_has_the_columns_and_no_rows(session, small_study):
    data = assemble(session, small_study.study_id)
    assert data.empty and list(data.columns[: len(CONTRACT)]) == CONTRACT
    assert "who5_percentage" in data.columns
