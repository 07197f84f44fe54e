"""Withdrawal stops everything pending at once and keeps or erases data as the protocol says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from consent import current_consent, withdraw
from study.models import (
    AuditEvent,
    ChatTurn,
    Consent,
    ContactPoint,
    Interaction,
    ItemResponse,
    MemoryNote,
    Occasion,
    OutboundMessage,
    ParticipantGoal,
    Response,
)

from .conftest import FREE_TEXT, amend


def _statuses(session, model, participant) -> list[str]:
    rows = session.exec(select(model).where(model.participant_id == participant.id))
    return sorted(row.status for row in rows)


def _withdraw(session, participant, protocol, clock, **kwargs):
    result = withdraw(
        session,
        participant=participant,
        protocol=protocol,
        now=kwargs.pop("now", clock.now()),
        actor=kwargs.pop("actor", "researcher:coord@example.org"),
        **kwargs,
    )
    session.commit()
    return result


def test_withdrawal_cancels_every_pending_message_and_open_occasion_at_once(
    session, protocol, make_participant, populate, clock
):
    participant = make_participant()
    populate(participant)

    result = _withdraw(
        session, participant, protocol, clock, reason="Moving abroad", by="coordinator"
    )

    assert result.already_withdrawn is False
    assert result.cancelled_messages == 3  # two pending, one being sent
    assert result.cancelled_occasions == 2  # one sent, one scheduled
    assert _statuses(session, OutboundMessage, participant) == [
        "cancelled",
        "cancelled",
        "cancelled",
        "failed",
        "sent",
    ]
    # What already happened stays on record.
    assert _statuses(session, Occasion, participant) == [
        "cancelled",
        "cancelled",
        "completed",
        "missed",
    ]
    pending = session.exec(
        select(OutboundMessage).where(
            OutboundMessage.participant_id == participant.id,
            OutboundMessage.status.in_(("pending", "sending")),
        )
    ).all()
    assert pending == []


def test_withdrawal_marks_the_participant_and_their_consent_and_is_audited(
    session, protocol, make_participant, populate, clock
):
    participant = make_participant()
    made = populate(participant)

    _withdraw(session, participant, protocol, clock, reason="  too  busy ", by="participant")

    assert participant.status == "withdrawn"
    assert participant.withdrawn_at == clock.now()
    assert participant.withdrawal_reason == "too busy"
    consent = session.get(Consent, made["consent"].id)
    session.refresh(consent)
    assert consent.withdrawn_at == clock.now()
    assert current_consent(session, participant) is None
    withdrawn = select(AuditEvent).where(AuditEvent.action == "participant.withdraw")
    event = session.exec(withdrawn).one()
    assert event.actor == "researcher:coord@example.org"
    assert event.details["by"] == "participant"
    assert event.details["cancelled_messages"] == 3
    assert event.details["reason_given"] is True
    assert "busy" not in str(event.details)  # free text stays out of the unerasable log


def test_withdrawing_twice_does_nothing_new(session, protocol, make_participant, populate, clock):
    participant = make_participant()
    populate(participant)
    _withdraw(session, participant, protocol, clock, reason="first")
    withdrawn_at = participant.withdrawn_at
    events = len(session.exec(select(AuditEvent)).all())

    again = _withdraw(
        session, participant, protocol, clock, now=clock.now() + timedelta(days=1), reason="again"
    )

    assert again.already_withdrawn is True
    assert (again.cancelled_messages, again.cancelled_occasions) == (0, 0)
    assert participant.withdrawn_at == withdrawn_at
    assert participant.withdrawal_reason == "first"
    assert len(session.exec(select(AuditEvent)).all()) == events


def test_a_message_queued_after_withdrawal_is_still_cancelled_by_a_second_withdrawal(
    session, protocol, make_participant, clock
):
    participant = make_participant("enrolled")
    _withdraw(session, participant, protocol, clock)
    session.add(
        OutboundMessage(
            participant_id=participant.id,
            channel="sms",
            purpose="reminder",
            body="late",
            send_after=clock.now(),
        )
    )
    session.commit()

    again = _withdraw(session, participant, protocol, clock)

    assert again.already_withdrawn is True and again.cancelled_messages == 1
    assert _statuses(session, OutboundMessage, participant) == ["cancelled"]
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "participant.withdraw_cleanup")
    ).one()


def test_keep_keeps_answers_and_contacts_but_erases_stored_chat_text(
    session, protocol, make_participant, populate, clock
):
    assert protocol.model.consent.data_on_withdrawal == "keep"
    participant = make_participant()
    populate(participant)

    result = _withdraw(session, participant, protocol, clock)

    # The logged turn's text, the chat's working copy, the memory note and the goal.
    assert result.erasure is None and result.erased_chat_contents == 4
    texts = session.exec(select(ItemResponse.text).where(ItemResponse.text.is_not(None))).all()
    assert texts == [FREE_TEXT]
    assert len(session.exec(select(Response)).all()) == 1
    assert len(session.exec(select(ContactPoint)).all()) == 2
    turn = session.exec(select(Interaction)).one()
    assert turn.content_encrypted is None and turn.prompt_tokens == 12
    chat = session.exec(select(ChatTurn)).one()
    assert (chat.message_encrypted, chat.reply_encrypted) == (None, None)
    assert chat.status == "answered"  # the fact of the turn stays
    assert session.exec(select(MemoryNote)).all() == []
    assert session.exec(select(ParticipantGoal)).all() == []


def test_erase_erases_everything_personal_on_withdrawal(
    session, protocol, make_participant, populate, clock, examples_copy
):
    erasing = amend(examples_copy, version="1.0", policy="erase")
    participant = make_participant()
    populate(participant)

    result = _withdraw(session, participant, erasing, clock)

    assert result.erasure is not None
    assert result.erasure.contact_points == 2 and result.erasure.responses_deleted == 1
    assert session.exec(select(ContactPoint)).all() == []
    assert session.exec(select(ItemResponse)).all() == []
    assert session.exec(select(Interaction)).all() == []
    assert participant.status == "withdrawn"
    actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-2:] == ["participant.withdraw", "participant.erase"]


def test_withdrawal_is_by_the_participant_or_a_coordinator(
    session, protocol, make_participant, clock
):
    with pytest.raises(ValueError, match="withdrawal by 'sponsor'"):
        _withdraw(session, make_participant("enrolled"), protocol, clock, by="sponsor")
