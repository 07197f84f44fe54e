"""Inbound SMS: stored once, sender hashed, carrier keywords, WITHDRAW, and the handler hook."""

from __future__ import annotations

import pytest
from sqlmodel import select

from study.channels import Reply, receive_sms, register_inbound_handler, unregister_inbound_handler
from study.channels.inbound import normalise_keyword
from study.models import AuditEvent, ContactPoint, InboundMessage, Occasion, OutboundMessage

from .conftest import PHONE

STRANGER = "+447700900999"


def receive(session, vault, clock, body, *, sid="SM" + "1" * 32, sender=PHONE, handlers=None):
    result = receive_sms(
        session,
        vault,
        provider_message_id=sid,
        sender=sender,
        body=body,
        now=clock.now(),
        handlers=handlers,
    )
    session.commit()
    return result


def stored(session) -> list[InboundMessage]:
    return list(session.exec(select(InboundMessage)))


def contact(session, participant) -> ContactPoint:
    session.expire_all()
    return session.exec(
        select(ContactPoint).where(ContactPoint.participant_id == participant.id)
    ).one()


def test_a_message_is_stored_with_the_sender_hashed_and_matched_to_the_participant(
    session, vault, clock, texter
):
    result = receive(session, vault, clock, "hello there")

    [message] = stored(session)
    assert message.sender_hash == vault.lookup_hash("sms", PHONE)
    assert PHONE not in message.sender_hash
    assert message.participant_id == texter.id
    assert message.body == "hello there"
    assert message.received_at == clock.now() and message.handled_at == clock.now()
    assert result.participant_code == texter.code
    assert result.action == "not_understood"
    assert "Reply HELP" in result.reply


def test_a_repeated_message_sid_is_stored_once_and_answered_the_same(session, vault, clock, texter):
    first = receive(session, vault, clock, "HELP")
    again = receive(session, vault, clock, "HELP")

    assert len(stored(session)) == 1
    assert again.duplicate is True and first.duplicate is False
    assert again.reply == first.reply


def test_stop_opts_the_number_out_and_a_repeat_changes_nothing(session, vault, clock, texter):
    result = receive(session, vault, clock, " stop ")
    assert result.reply is None  # Twilio sends the carrier's confirmation itself
    assert result.action == "opt_out"
    assert contact(session, texter).opted_out_at == clock.now()
    audits = session.exec(select(AuditEvent).where(AuditEvent.action == "contact.opt_out")).all()
    assert len(audits) == 1
    assert audits[0].actor == f"participant:{texter.code}"

    clock.advance(minutes=5)
    receive(session, vault, clock, "STOP")  # Twilio's retry of the same message
    assert contact(session, texter).opted_out_at == clock.now().replace(minute=0)
    assert (
        len(session.exec(select(AuditEvent).where(AuditEvent.action == "contact.opt_out")).all())
        == 1
    )


def test_stop_keeps_the_participant_in_the_study(session, vault, clock, texter):
    receive(session, vault, clock, "STOP")
    session.refresh(texter)
    assert texter.status == "enrolled"
    assert session.exec(select(OutboundMessage)).one().status == "pending"


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit", "Stop."])
def test_every_carrier_opt_out_keyword_opts_out(session, vault, clock, texter, word):
    assert receive(session, vault, clock, word).action == "opt_out"
    assert contact(session, texter).opted_out_at is not None


def test_start_opts_back_in(session, vault, clock, texter):
    receive(session, vault, clock, "STOP", sid="SM" + "1" * 32)
    result = receive(session, vault, clock, "start", sid="SM" + "2" * 32)
    assert result.action == "opt_in" and result.reply is None
    assert contact(session, texter).opted_out_at is None
    actions = [e.action for e in session.exec(select(AuditEvent)) if e.action.startswith("contact")]
    assert actions == ["contact.opt_out", "contact.opt_in"]


@pytest.mark.parametrize("word", ["YES", "unstop"])
def test_the_other_opt_in_keywords(session, vault, clock, texter, word):
    receive(session, vault, clock, "STOP", sid="SM" + "1" * 32)
    assert receive(session, vault, clock, word, sid="SM" + "2" * 32).action == "opt_in"
    assert contact(session, texter).opted_out_at is None


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_names_the_study_contact_and_the_two_ways_out(session, vault, clock, texter, word):
    result = receive(session, vault, clock, word)
    assert result.action == "help"
    assert "flourish-study@example.org" in result.reply
    assert "STOP" in result.reply and "WITHDRAW" in result.reply
    assert result.reply.startswith("FLOURISH:")


def test_help_from_an_unknown_number_says_only_what_the_number_is(session, vault, clock, texter):
    result = receive(session, vault, clock, "HELP", sender=STRANGER)
    assert result.participant_code is None
    assert "research study" in result.reply and "example.org" not in result.reply
    assert stored(session)[0].participant_id is None


def test_withdraw_withdraws_and_cancels_pending_messages_and_open_occasions(
    session, vault, clock, texter
):
    result = receive(session, vault, clock, "Withdraw")

    assert result.action == "withdraw"
    assert "left the study" in result.reply
    session.expire_all()
    session.refresh(texter)
    assert texter.status == "withdrawn" and texter.withdrawn_at == clock.now()
    assert session.exec(select(OutboundMessage)).one().status == "cancelled"
    assert session.exec(select(Occasion)).one().status == "cancelled"
    withdrawal = session.exec(
        select(AuditEvent).where(AuditEvent.action == "participant.withdraw")
    ).one()
    assert withdrawal.actor == f"participant:{texter.code}"
    # Withdrawing is not opting out: the number is not blocked, the study simply stops.
    assert contact(session, texter).opted_out_at is None


def test_a_repeated_withdraw_answers_the_same_and_withdraws_once(session, vault, clock, texter):
    first = receive(session, vault, clock, "WITHDRAW")
    clock.advance(minutes=1)
    again = receive(session, vault, clock, "WITHDRAW")
    assert again.duplicate and again.reply == first.reply
    session.refresh(texter)
    assert texter.withdrawn_at == clock.now().replace(minute=0)
    events = session.exec(select(AuditEvent).where(AuditEvent.action.startswith("participant.")))
    assert [e.action for e in events] == ["participant.withdraw"]


def test_withdraw_from_an_unknown_number_changes_nothing(session, vault, clock, texter):
    result = receive(session, vault, clock, "WITHDRAW", sender=STRANGER)
    assert result.action == "withdraw_unknown"
    session.refresh(texter)
    assert texter.status == "enrolled"


def test_a_sender_that_is_not_a_phone_number_is_stored_without_a_hash(session, vault, clock):
    result = receive(session, vault, clock, "hello", sender="TWILIO")
    assert stored(session)[0].sender_hash == ""
    assert result.participant_code is None


def test_registered_handlers_get_non_keyword_messages_but_never_keywords(
    session, vault, clock, texter
):
    seen = []

    def survey(context):
        seen.append((context.message.body, context.participant.code, context.replay))
        return Reply("Thanks, 7 recorded.", "survey_answer") if context.keyword == "7" else None

    register_inbound_handler(survey)
    try:
        answer = receive(session, vault, clock, "7", sid="SM" + "1" * 32)
        other = receive(session, vault, clock, "maybe", sid="SM" + "2" * 32)
        repeat = receive(session, vault, clock, "7", sid="SM" + "1" * 32)
        receive(session, vault, clock, "STOP", sid="SM" + "3" * 32)
    finally:
        unregister_inbound_handler(survey)

    assert answer.reply == "Thanks, 7 recorded." and answer.action == "survey_answer"
    assert other.action == "not_understood"
    assert repeat.reply == answer.reply and repeat.duplicate
    assert seen == [
        ("7", texter.code, False),
        ("maybe", texter.code, False),
        ("7", texter.code, True),
    ]


@pytest.mark.parametrize(
    ("body", "keyword"),
    [(" stop ", "STOP"), ("Stop!", "STOP"), ("stop  all", "STOP ALL"), ("help?", "HELP")],
)
def test_keywords_ignore_case_spacing_and_trailing_punctuation(body, keyword):
    assert normalise_keyword(body) == keyword


def test_two_concurrent_deliveries_of_one_message_store_it_once(
    session, engine, vault, clock, texter, monkeypatch
):
    """The second delivery checked for the message before the first committed; the unique
    constraint stops its insert, and it is answered as a repeat."""
    from sqlmodel import Session

    from study.channels import inbound

    first = receive(session, vault, clock, "STOP")
    real_stored = inbound._stored
    lookups = []

    def not_yet_committed_on_first_look(session, sid):
        lookups.append(sid)
        return None if len(lookups) == 1 else real_stored(session, sid)

    monkeypatch.setattr(inbound, "_stored", not_yet_committed_on_first_look)
    with Session(engine, expire_on_commit=False) as other:
        second = receive(other, vault, clock, "STOP")

    assert len(lookups) == 2  # looked, inserted, hit the constraint, looked again
    assert second.duplicate is True
    assert second.reply == first.reply and second.action == "opt_out"
    assert len(stored(session)) == 1
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "contact.opt_out"))
    assert len(events.all()) == 1
