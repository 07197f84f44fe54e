"""Batches of turns: the same rules as one turn, a fixed number of queries, races settled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event as sa_event
from sqlmodel import select

from study.assistant import ingest
from study.assistant.ingest import ingest_events
from study.assistant.log import decrypt_content, record_interaction
from study.models import Interaction
from study.pii import PiiVault

from .trial import ENROLLED_AT, make_trial

AT = ENROLLED_AT + timedelta(hours=2)
NOW = ENROLLED_AT + timedelta(days=1)


@pytest.fixture
def trial(session):
    trial = make_trial(session, PiiVault(Fernet.generate_key().decode()))
    trial.participant("P-ADA", store_content=True)
    trial.participant("P-BOB", store_content=False)
    return trial


def turn(n, **overrides):
    return {
        "event_id": f"e{n}",
        "participant": "P-ADA",
        "session_id": "s",
        "role": "user",
        "occurred_at": AT + timedelta(seconds=n),
        "content": f"turn {n}, call 07700 900461",
        **overrides,
    }


def ingest_batch(trial, events):
    return ingest_events(
        trial.session, vault=trial.vault, study_id=trial.study.id, events=events, now=NOW
    )


def statuses(outcomes):
    return [(outcome.event_id, outcome.status) for outcome in outcomes]


def test_a_batch_stores_what_record_interaction_would(session, trial):
    outcomes = ingest_batch(trial, [turn(1), turn(2, participant="P-BOB", latency_ms=5)])
    session.commit()
    assert statuses(outcomes) == [("e1", "accepted"), ("e2", "accepted")]
    ada, bob = session.exec(select(Interaction).order_by(Interaction.event_id)).all()
    assert decrypt_content(ada, trial.vault) == "turn 1, call [phone]"
    assert bob.content_encrypted is None  # no consent to store text
    assert (ada.source, ada.arm_id, bob.latency_ms) == ("ingest", trial.arms["reflective"].id, 5)


def test_a_batch_and_single_turns_see_each_others_events(session, trial):
    record_interaction(
        session,
        vault=trial.vault,
        study_id=trial.study.id,
        participant=trial.participant("P-CAL"),
        event_id="e1",
        session_id="s",
        role="user",
        occurred_at=AT,
        source="ingest",
    )
    outcomes = ingest_batch(trial, [turn(1, participant="P-CAL", occurred_at=AT, content=None)])
    assert statuses(outcomes) == [("e1", "duplicate")]


def test_an_event_id_repeated_within_a_batch(session, trial):
    outcomes = ingest_batch(trial, [turn(1), turn(1), turn(1, role="assistant")])
    assert statuses(outcomes) == [("e1", "accepted"), ("e1", "duplicate"), ("e1", "rejected")]
    assert "different role" in outcomes[2].reason
    session.commit()
    assert len(session.exec(select(Interaction)).all()) == 1


def test_the_number_of_queries_does_not_grow_with_the_batch(session, engine, trial):
    statements = []

    def count(*_args):
        statements.append(1)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        ingest_batch(trial, [turn(n) for n in range(5)])
        small = len(statements)
        statements.clear()
        ingest_batch(trial, [turn(n) for n in range(100, 400)])
        large = len(statements)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert large <= small + 1  # SQLite may split one INSERT of many rows in two


@pytest.mark.parametrize(
    ("theirs", "expected"),
    [({}, "duplicate"), ({"session_id": "other"}, "rejected")],
    ids=["same-data", "different-data"],
)
def test_an_event_stored_by_another_writer_meanwhile(session, trial, monkeypatch, theirs, expected):
    # The other writer's row appears after this batch read the stored events, so only the
    # insert's ON CONFLICT finds it.
    ada = trial.participant("P-CAL")
    record_interaction(
        session,
        vault=trial.vault,
        study_id=trial.study.id,
        participant=ada,
        event_id="e1",
        session_id=theirs.get("session_id", "s"),
        role="user",
        occurred_at=AT + timedelta(seconds=1),
        source="ingest",
    )
    real_stored = ingest._stored
    calls = []

    def stale_then_real(*args):
        calls.append(1)
        return {} if len(calls) == 1 else real_stored(*args)

    monkeypatch.setattr(ingest, "_stored", stale_then_real)
    [outcome] = ingest_batch(trial, [turn(1, participant="P-CAL", content=None)])
    assert outcome.status == expected
    assert len(session.exec(select(Interaction)).all()) == 1


def test_malformed_events_from_python_callers_are_rejected_not_raised(session, trial):
    outcomes = ingest_batch(trial, [turn(1, role="moderator"), turn(2, prompt_tokens=-3), turn(3)])
    assert statuses(outcomes) == [("e1", "rejected"), ("e2", "rejected"), ("e3", "accepted")]
