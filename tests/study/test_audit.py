"""The audit log: hash chain, append-only at the database level, export and re-verification."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from study import audit
from study.models import AuditEvent

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record_three(session: Session) -> list[AuditEvent]:
    events = [
        audit.record(
            session,
            "researcher:pi@example.org",
            "study.loaded",
            entity_type="study",
            entity_id="wellbeing",
            after={"version": 1},
            at=START,
        ),
        audit.record(
            session,
            "participant:P-7K3M9Q",
            "consent.given",
            entity_type="participant",
            entity_id=7,
            details={"document": "consent-v2", "sections": [1, 2, 3]},
            at=START + timedelta(minutes=5),
        ),
        audit.record(
            session,
            "system:scheduler",
            "occasion.sent",
            entity_type="occasion",
            entity_id=31,
            before={"status": "due"},
            after={"status": "sent"},
            at=START + timedelta(minutes=10, microseconds=123456),
        ),
    ]
    session.commit()
    return events


def test_each_event_links_to_the_hash_of_the_one_before(session):
    first, second, third = record_three(session)
    assert first.prev_hash == ""
    assert second.prev_hash == first.event_hash
    assert third.prev_hash == second.event_hash
    assert len({first.event_hash, second.event_hash, third.event_hash}) == 3


def test_only_hashes_of_before_and_after_states_are_kept(session):
    *_, sent = record_three(session)
    assert sent.before_hash == audit.state_hash({"status": "due"})
    assert sent.after_hash == audit.state_hash({"status": "sent"})
    assert audit.state_hash(None) == ""


def test_an_intact_log_verifies_after_a_round_trip_through_the_database(session):
    record_three(session)
    session.expunge_all()
    assert audit.verify_chain(audit.events(session)) == []


def test_instants_in_other_time_zones_are_stored_so_that_they_still_verify(session):
    berlin = timezone(timedelta(hours=1))
    audit.record(session, "cli:ops", "backup.taken", at=datetime(2026, 3, 2, 10, tzinfo=berlin))
    session.commit()
    session.expunge_all()
    (event,) = audit.events(session)
    assert event.occurred_at == START
    assert audit.verify_chain([event]) == []


def test_naive_instants_are_refused(session):
    with pytest.raises(ValueError, match="naive"):
        audit.record(session, "cli:ops", "backup.taken", at=datetime(2026, 3, 2, 9))


# --- tampering ----------------------------------------------------------------------------------


def copy(event: AuditEvent, **changes) -> AuditEvent:
    return AuditEvent(**{**event.model_dump(), **changes})


def test_verify_chain_detects_an_edited_event(session):
    events = [copy(e) for e in record_three(session)]
    events[1].actor = "participant:P-OTHER"
    problems = audit.verify_chain(events)
    assert [(p.event_id, p.message) for p in problems] == [
        (events[1].id, "content does not match its hash")
    ]


def test_verify_chain_detects_a_removed_event(session):
    first, _, third = (copy(e) for e in record_three(session))
    problems = audit.verify_chain([first, third])
    assert [(p.event_id, p.message) for p in problems] == [
        (third.id, "does not link to the event before it")
    ]


def test_verify_chain_detects_reordering(session):
    first, second, third = (copy(e) for e in record_three(session))
    assert audit.verify_chain([first, third, second]) != []


def test_verify_chain_detects_a_forged_rehash(session):
    # Someone who edits a row and recomputes its hash still breaks the next row's link.
    events = [copy(e) for e in record_three(session)]
    events[0].details = {"forged": True}
    events[0].event_hash = audit._event_hash(events[0])
    problems = audit.verify_chain(events)
    assert [(p.event_id, p.message) for p in problems] == [
        (events[1].id, "does not link to the event before it")
    ]


def _drop_append_only_triggers(connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.execute(text("DROP TRIGGER audit_event_no_update"))
    else:
        connection.execute(text("DROP TRIGGER audit_event_append_only ON audit_event"))


def test_verify_chain_detects_a_row_tampered_behind_the_triggers(engine, session):
    _, second, _ = record_three(session)
    session.close()
    # An attacker with owner rights can drop the trigger; the chain still gives them away.
    with engine.begin() as connection:
        _drop_append_only_triggers(connection)
        connection.execute(
            text("UPDATE audit_event SET actor = 'researcher:someone-else' WHERE id = :id"),
            {"id": second.id},
        )
    with Session(engine) as fresh:
        problems = audit.verify_chain(audit.events(fresh))
    assert [(p.event_id, p.message) for p in problems] == [
        (second.id, "content does not match its hash")
    ]


# --- append-only at the database level ----------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET actor = 'researcher:mallory@example.org'",
        "DELETE FROM audit_event",
        "DELETE FROM audit_event WHERE id = (SELECT max(id) FROM audit_event)",
    ],
)
def test_the_database_refuses_updates_and_deletes(engine, session, statement):
    record_three(session)
    session.close()
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    with Session(engine) as fresh:
        assert len(list(audit.events(fresh))) == 3


def test_the_orm_cannot_delete_an_event_either(engine, session):
    first, *_ = record_three(session)
    session.delete(first)
    with pytest.raises(DatabaseError, match="append-only"):
        session.commit()


# --- export -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips_and_reverifies(session, fmt):
    originals = record_three(session)
    exported = audit.export(session, fmt)
    parsed = audit.parse_export(exported, fmt)
    assert [e.model_dump() for e in parsed] == [e.model_dump() for e in originals]
    assert audit.verify_chain(parsed) == []


def test_jsonl_export_has_one_object_per_event_with_every_field(session):
    record_three(session)
    lines = audit.export(session, "jsonl").splitlines()
    assert len(lines) == 3
    assert set(json.loads(lines[1])) == set(audit.EXPORT_FIELDS)
    assert json.loads(lines[1])["details"] == {"document": "consent-v2", "sections": [1, 2, 3]}


def test_an_edited_export_fails_verification(session):
    record_three(session)
    exported = audit.export(session, "csv").replace("consent.given", "consent.refused")
    assert audit.verify_chain(audit.parse_export(exported, "csv")) != []


def test_a_partial_export_verifies_from_its_first_link(session):
    record_three(session)
    since = START + timedelta(minutes=5)
    parsed = audit.parse_export(audit.export(session, "jsonl", since=since), "jsonl")
    assert [e.action for e in parsed] == ["consent.given", "occasion.sent"]
    assert audit.verify_chain(parsed) != []  # the first event links to one not included
    assert audit.verify_chain(parsed, start=parsed[0].prev_hash) == []


def test_unknown_formats_and_foreign_files_are_refused(session):
    with pytest.raises(ValueError, match="unknown audit export format"):
        audit.export(session, "xml")
    with pytest.raises(ValueError, match="not an audit export"):
        audit.parse_export('{"id": 1, "actor": "x"}\n', "jsonl")
