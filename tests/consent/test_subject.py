"""Data-subject requests: export everything held on one participant, erase it (rows)."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from consent import ErasureError, erase_subject, export_subject, purge_erased_residues, withdraw
from study.models import (
    Allocation,
    AuditEvent,
    ChatTurn,
    Consent,
    ContactPoint,
    EnrollmentProgress,
    InboundMessage,
    Interaction,
    ItemResponse,
    MemoryNote,
    Occasion,
    OutboundMessage,
    Participant,
    ParticipantGoal,
    Response,
)

from .conftest import (
    CHAT_REPLY,
    CHAT_TEXT,
    EMAIL,
    EMAIL_BODY,
    FREE_TEXT,
    GOAL_TEXT,
    MEMORY_NOTE,
    PHONE,
    SCREENED_AGE,
    SIGNED_NAME,
    SMS_BODY,
)

COORDINATOR = "researcher:coord@example.org"


def test_export_holds_everything_on_the_participant_decrypted(
    session, vault, make_participant, populate, clock
):
    participant = make_participant()
    populate(participant)
    make_participant()  # someone else, who must not appear

    export = export_subject(session, vault, participant, actor=COORDINATOR, now=clock.now())
    session.commit()

    json.dumps(export)  # JSON-ready as it is
    assert export["participant"]["code"] == participant.code
    assert export["participant"]["status"] == "enrolled"
    assert export["participant"]["timezone"] == "Europe/London"
    assert export["participant"]["strata"] == {"wellbeing": "high", "age_band": "age_35_plus"}
    assert {(c["kind"], c["value"]) for c in export["contact_points"]} == {
        ("sms", PHONE),
        ("email", EMAIL),
    }
    [consent] = export["consents"]
    assert consent["signature"] == SIGNED_NAME and consent["document_version"] == "1.0"
    assert consent["options"] == {"store_chat_content": True, "ema": False}
    assert export["allocation"]["arm"] == "reflective"
    assert "sequence_number" not in export["allocation"]
    assert len(export["occasions"]) == 4
    [response] = export["responses"]
    assert response["consent_version"] == "1.0"
    assert response["occasion"] == {"schedule_key": "baseline", "wave": 0}
    assert {item["item_id"]: item["text"] for item in response["items"]}["comment"] == FREE_TEXT
    assert export["interactions"][0]["content"] == CHAT_TEXT
    [turn] = export["assistant"]["chat"]
    assert (turn["message"], turn["reply"]) == (CHAT_TEXT, CHAT_REPLY)
    assert [n["text"] for n in export["assistant"]["memory_notes"]] == [MEMORY_NOTE]
    assert [g["text"] for g in export["assistant"]["goals"]] == [GOAL_TEXT]
    assert EMAIL_BODY in [m["body"] for m in export["messages"]["outbound"]]
    assert export["messages"]["inbound"][0]["body"] == SMS_BODY
    assert export["enrollment"]["screening_answers"]["age"] == SCREENED_AGE
    assert export["enrollment"]["baseline"]["who5"]["scores"] == {"raw": 13}

    event = session.exec(select(AuditEvent).where(AuditEvent.action == "participant.export")).one()
    assert event.actor == COORDINATOR
    assert event.details["counts"]["contact_points"] == 2
    assert PHONE not in json.dumps(event.details)


def _withdrawn(session, participant, protocol, clock):
    withdraw(
        session,
        participant=participant,
        protocol=protocol,
        now=clock.now(),
        actor=COORDINATOR,
        reason="Juniper asked us to delete everything",
    )
    session.commit()


def test_erasure_keeping_pseudonymous_data_removes_only_what_is_personal(
    session, vault, protocol, make_participant, populate, clock
):
    participant = make_participant()
    made = populate(participant)
    _withdrawn(session, participant, protocol, clock)

    report = erase_subject(
        session,
        participant=participant,
        now=clock.now(),
        actor=COORDINATOR,
        keep_pseudonymous_data=True,
    )
    session.commit()

    assert report.contact_points == 2
    assert report.signatures == 1
    assert report.free_text_answers == 1
    assert report.outbound_bodies == 5 and report.inbound_bodies == 1
    assert report.withdrawal_reason == 1
    assert report.responses_deleted == 0
    assert session.exec(select(ContactPoint)).all() == []
    consent = session.get(Consent, made["consent"].id)
    session.refresh(consent)
    assert consent.signature_encrypted == b""  # the fact and version of consent remain
    assert consent.document_version == "1.0" and consent.withdrawn_at is not None
    items = session.exec(select(ItemResponse).order_by(ItemResponse.item_id)).all()
    assert [(i.item_id, i.value, i.text) for i in items] == [
        ("comment", None, None),
        ("who5_1", 3, None),
    ]
    assert session.exec(select(Interaction.content_encrypted)).all() == [None]
    # The chat's own copy, notes and goals go too (withdrawal under `keep` already blanks them).
    turns = session.exec(select(ChatTurn.message_encrypted, ChatTurn.reply_encrypted)).all()
    assert turns == [(None, None)]
    assert session.exec(select(MemoryNote)).all() == []
    assert session.exec(select(ParticipantGoal)).all() == []
    assert set(session.exec(select(OutboundMessage.body)).all()) == {""}
    assert set(session.exec(select(InboundMessage.body)).all()) == {""}
    session.refresh(participant)
    assert participant.withdrawal_reason == ""
    assert participant.code and participant.status == "withdrawn"
    assert session.exec(select(Allocation)).one().participant_id == participant.id

    export = export_subject(session, vault, participant, actor=COORDINATOR)
    assert export["contact_points"] == []
    assert export["consents"][0]["signature"] is None
    assert export["consents"][0]["signature_erased"] is True


def test_full_erasure_also_removes_responses_chats_schedule_and_messages(
    session, vault, protocol, make_participant, populate, clock
):
    participant = make_participant()
    populate(participant)
    other = make_participant()
    populate(other)
    _withdrawn(session, participant, protocol, clock)

    report = erase_subject(session, participant=participant, now=clock.now(), actor=COORDINATOR)
    session.commit()
    session.close()
    assert purge_erased_residues(session.get_bind())  # checkpoint (SQLite) or VACUUM (PostgreSQL)

    assert report.keep_pseudonymous_data is False
    assert (report.responses_deleted, report.item_responses_deleted) == (1, 2)
    assert (report.occasions_deleted, report.outbound_deleted, report.inbound_deleted) == (4, 5, 1)
    assert report.enrollment_records_deleted == 1
    models = (
        Response,
        Interaction,
        Occasion,
        OutboundMessage,
        InboundMessage,
        ContactPoint,
        EnrollmentProgress,
    )
    for model in models:
        owners = session.exec(select(model.participant_id)).all()
        assert participant.id not in owners, model
        assert other.id in owners, model  # nobody else's data is touched
    assert len(session.exec(select(ItemResponse)).all()) == 2
    assert session.get(Participant, participant.id) is not None
    assert len(session.exec(select(Consent).where(Consent.participant_id == participant.id)).all())


def test_erasure_is_audited_with_counts_and_never_the_values(
    session, vault, protocol, make_participant, populate, clock
):
    participant = make_participant()
    populate(participant)
    _withdrawn(session, participant, protocol, clock)

    erase_subject(session, participant=participant, now=clock.now(), actor=COORDINATOR)
    session.commit()

    event = session.exec(select(AuditEvent).where(AuditEvent.action == "participant.erase")).one()
    assert event.actor == COORDINATOR and event.entity_id == str(participant.id)
    assert event.details["counts"]["contact_points"] == 2
    assert event.details["keep_pseudonymous_data"] is False
    logged = json.dumps([e.details for e in session.exec(select(AuditEvent))])
    values = (PHONE, EMAIL, SIGNED_NAME, FREE_TEXT, CHAT_TEXT, MEMORY_NOTE, SMS_BODY, "Juniper")
    for value in values:
        assert value not in logged


def test_erasing_twice_reports_nothing_left_to_erase(
    session, protocol, make_participant, populate, clock
):
    participant = make_participant()
    populate(participant)
    _withdrawn(session, participant, protocol, clock)
    erase_subject(session, participant=participant, now=clock.now(), actor=COORDINATOR)
    session.commit()

    again = erase_subject(session, participant=participant, now=clock.now(), actor=COORDINATOR)

    assert again.total == 0


@pytest.mark.parametrize("status", ["consented", "enrolled"])
def test_someone_still_taking_part_must_be_withdrawn_before_erasure(
    session, make_participant, clock, status
):
    with pytest.raises(ErasureError, match="withdraw them"):
        erase_subject(
            session, participant=make_participant(status), now=clock.now(), actor=COORDINATOR
        )
