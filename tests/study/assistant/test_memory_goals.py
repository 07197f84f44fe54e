"""Memory notes and goals: the participant's own words, which they see, edit and delete;
encrypted at rest, limited in number and length, audited without their text, and never
reachable by another participant."""

from __future__ import annotations

import pytest
from sqlmodel import select

from study.assistant.goals import goals
from study.assistant.memory import TextRefused, notes
from study.models import AuditEvent, MemoryNote, ParticipantGoal
from tests.study.assistant.enrolled import enroll


@pytest.fixture
def alice(session, trial, clock):
    return enroll(session, trial, "reflective", code="P-ALICE1", now=clock.now())


@pytest.fixture
def bob(session, trial, clock):
    return enroll(session, trial, "reflective", code="P-BOB001", now=clock.now())


@pytest.mark.parametrize("store", [notes, goals], ids=["notes", "goals"])
def test_a_participant_adds_edits_and_deletes_their_own_texts(session, vault, alice, clock, store):
    first = store.add(session, vault, alice, "  Biscuit is my dog  ", now=clock.now())
    second = store.add(session, vault, alice, "I work nights", now=clock.now())
    assert store.texts(session, vault, alice) == ["Biscuit is my dog", "I work nights"]
    store.edit(session, vault, alice, first.id, "Biscuit is my old dog", now=clock.now())
    store.delete(session, alice, second.id, now=clock.now())
    assert store.texts(session, vault, alice) == ["Biscuit is my old dog"]
    actions = session.exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    table = store.model.__tablename__
    verbs = ("add", "add", "edit", "delete")
    assert actions[-4:] == [f"assistant.{table}.{verb}" for verb in verbs]
    assert "Biscuit" not in str(session.exec(select(AuditEvent.details)).all())


@pytest.mark.parametrize("store", [notes, goals], ids=["notes", "goals"])
def test_texts_are_stored_encrypted(session, vault, alice, clock, store):
    store.add(session, vault, alice, "Zebedee Lane allotment", now=clock.now())
    (row,) = session.exec(select(store.model)).all()
    assert b"Zebedee" not in bytes(row.text_encrypted)
    assert vault.decrypt(row.text_encrypted) == "Zebedee Lane allotment"


@pytest.mark.parametrize("store", [notes, goals], ids=["notes", "goals"])
def test_another_participants_texts_are_out_of_reach(session, vault, alice, bob, clock, store):
    entry = store.add(session, vault, alice, "Alice's own", now=clock.now())
    assert store.entries(session, vault, bob) == []
    for attempt in (
        lambda: store.get(session, vault, bob, entry.id),
        lambda: store.edit(session, vault, bob, entry.id, "taken over", now=clock.now()),
        lambda: store.delete(session, bob, entry.id, now=clock.now()),
    ):
        with pytest.raises(LookupError):
            attempt()
    assert store.texts(session, vault, alice) == ["Alice's own"]


def test_empty_overlong_and_one_too_many_goals_are_refused_with_a_reason(
    session, vault, alice, clock
):
    with pytest.raises(TextRefused, match="write your goal"):
        goals.add(session, vault, alice, "   ", now=clock.now())
    with pytest.raises(TextRefused, match="300 characters"):
        goals.add(session, vault, alice, "x" * 301, now=clock.now())
    for number in range(goals.max_count):
        goals.add(session, vault, alice, f"goal {number}", now=clock.now())
    with pytest.raises(TextRefused, match="up to 5 goals"):
        goals.add(session, vault, alice, "one more", now=clock.now())
    assert len(session.exec(select(ParticipantGoal)).all()) == goals.max_count


def test_a_note_kept_from_a_chat_says_so(session, vault, alice, clock):
    kept = notes.add(session, vault, alice, "From our chat", now=clock.now(), source="chat")
    assert kept.source == "chat"
    assert session.exec(select(MemoryNote.source)).all() == ["chat"]
