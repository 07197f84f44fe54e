"""Comprehension, signing, re-consent and the consent version of each record."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from consent import (
    ConsentError,
    check_comprehension,
    current_consent,
    load_document,
    needs_reconsent,
    sign,
    version_at,
    version_in_force,
)
from study.models import AuditEvent, Consent
from study.protocol.registry import register_protocol

from .conftest import RIGHT_ANSWERS, SIGNED_NAME, amend


def test_all_comprehension_answers_right_means_nothing_to_correct(protocol):
    assert check_comprehension(protocol, RIGHT_ANSWERS) == []


def test_wrong_and_missing_comprehension_answers_are_named(protocol):
    answers = {**RIGHT_ANSWERS, "allocation_by_chance": "researcher"}
    del answers["assistant_is_ai"]

    assert check_comprehension(protocol, answers) == ["allocation_by_chance", "assistant_is_ai"]


def _sign(session, vault, participant, protocol, clock, **kwargs):
    return sign(
        session,
        vault,
        participant=participant,
        protocol=protocol,
        signed_name=kwargs.pop("signed_name", SIGNED_NAME),
        options=kwargs.pop("options", {"store_chat_content": True}),
        now=kwargs.pop("now", clock.now()),
        actor=f"participant:{participant.code}",
    )


def test_signing_records_version_hash_options_and_an_encrypted_signature(
    session, vault, protocol, make_participant, clock
):
    participant = make_participant()

    consent = _sign(session, vault, participant, protocol, clock)
    session.commit()

    assert participant.status == "consented"
    assert consent.document_version == "1.0"
    assert consent.document_hash == load_document(protocol).sha256
    assert consent.options == {"store_chat_content": True, "ema": False}
    assert consent.signed_at == clock.now()
    assert vault.decrypt(consent.signature_encrypted) == SIGNED_NAME
    raw = session.execute(text("SELECT * FROM consent WHERE id = :id"), {"id": consent.id}).one()
    stored = b"".join(
        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        for value in raw
    )
    assert b"Quistgaard" not in stored and b"Juniper" not in stored
    assert current_consent(session, participant).id == consent.id


def test_signing_is_audited_without_the_name(session, vault, protocol, make_participant, clock):
    participant = make_participant()
    consent = _sign(session, vault, participant, protocol, clock)
    session.commit()

    event = session.exec(select(AuditEvent).where(AuditEvent.action == "consent.sign")).one()
    assert event.entity_id == str(consent.id)
    assert event.details["participant"] == participant.code
    assert event.details["version"] == "1.0"
    assert "Quistgaard" not in json.dumps(event.details)


def test_optional_items_not_ticked_count_as_refused(
    session, vault, protocol, make_participant, clock
):
    consent = _sign(session, vault, make_participant(), protocol, clock, options={})
    assert consent.options == {"store_chat_content": False, "ema": False}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signed_name": "   "}, "type your full name"),
        ({"signed_name": "x" * 201}, "at most 200"),
        ({"options": {"share_with_sponsor": True}}, "unknown optional consent item"),
        ({"options": {"store_chat_content": "yes"}}, "yes or no"),
    ],
)
def test_invalid_signatures_are_refused(
    session, vault, protocol, make_participant, clock, changes, message
):
    with pytest.raises(ConsentError, match=message):
        _sign(session, vault, make_participant(), protocol, clock, **changes)


@pytest.mark.parametrize("status", ["withdrawn", "ineligible"])
def test_someone_withdrawn_or_ineligible_cannot_sign(
    session, vault, protocol, make_participant, clock, status
):
    with pytest.raises(ConsentError, match=status):
        _sign(session, vault, make_participant(status), protocol, clock)


def test_an_amended_consent_document_sends_participants_through_reconsent(
    session, vault, protocol, study, make_participant, clock, examples_copy
):
    participant = make_participant()
    first = _sign(session, vault, participant, protocol, clock)
    participant.status = "enrolled"
    session.commit()
    assert needs_reconsent(session, participant, protocol) is False

    amended = amend(examples_copy, version="2.0", extra_text="## 12. New\nWe now also ask X.")
    registration = register_protocol(session, amended, actor="test")
    session.commit()
    assert registration.outcome == "amended"
    assert needs_reconsent(session, participant, amended) is True

    later = clock.now() + timedelta(days=30)
    second = _sign(session, vault, participant, amended, clock, now=later, options={})
    session.commit()

    assert needs_reconsent(session, participant, amended) is False
    assert participant.status == "enrolled"  # re-consent does not step anyone back
    session.refresh(first)
    assert first.superseded_at == later
    assert current_consent(session, participant).id == second.id
    assert second.document_version == "2.0"
    assert second.document_hash != first.document_hash
    history = session.exec(select(Consent).where(Consent.participant_id == participant.id))
    assert len(history.all()) == 2
    resign = session.exec(select(AuditEvent).where(AuditEvent.action == "consent.resign")).one()
    assert resign.details["supersedes"] == first.id


def test_people_not_taking_part_are_never_asked_to_reconsent(
    session, vault, protocol, make_participant, clock, examples_copy
):
    amended = amend(examples_copy, version="2.0")
    assert needs_reconsent(session, make_participant("screening"), amended) is False
    assert needs_reconsent(session, make_participant("withdrawn"), amended) is False
    # Enrolled without any consent on record is abnormal and must be fixed by consenting.
    assert needs_reconsent(session, make_participant("enrolled"), protocol) is True


def test_each_record_knows_the_consent_version_it_was_collected_under(
    session, vault, protocol, make_participant, clock, examples_copy
):
    participant = make_participant()
    with pytest.raises(ConsentError, match="no active consent"):
        version_in_force(session, participant)
    start = clock.now()
    _sign(session, vault, participant, protocol, clock, now=start)
    assert version_in_force(session, participant) == "1.0"

    amended = amend(examples_copy, version="2.0")
    _sign(session, vault, participant, amended, clock, now=start + timedelta(days=10))
    session.commit()

    assert version_in_force(session, participant) == "2.0"
    assert version_at(session, participant, start - timedelta(seconds=1)) is None
    assert version_at(session, participant, start + timedelta(days=9)) == "1.0"
    assert version_at(session, participant, start + timedelta(days=10)) == "2.0"
