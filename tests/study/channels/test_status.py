"""Delivery reports move an outbox message forward only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from study.channels import StatusOutcome, apply_status
from study.models import OutboundMessage

SID = "SM" + "a" * 32


@pytest.fixture
def sent(session, texter, clock) -> OutboundMessage:
    """The texter's invitation, recorded as sent by the dispatcher."""
    message = session.exec(select(OutboundMessage)).one()
    message.status = "sent"
    message.provider_message_id = SID
    message.sent_at = clock.now()
    session.add(message)
    session.commit()
    return message


def report(session, clock, status, *, sid=SID, error_code=None, attempt_key=None):
    clock.advance(seconds=5)
    outcome = apply_status(
        session,
        provider_message_id=sid,
        provider_status=status,
        now=clock.now(),
        error_code=error_code,
        attempt_key=attempt_key,
    )
    session.commit()
    return outcome


def current(session, message) -> OutboundMessage:
    session.expire_all()
    return session.get(OutboundMessage, message.id)


def test_delivered_moves_a_sent_message_forward_and_stamps_the_time(session, clock, sent):
    assert report(session, clock, "delivered") is StatusOutcome.UPDATED
    message = current(session, sent)
    assert message.status == "delivered"
    assert message.status_updated_at == clock.now()


def test_a_late_sent_after_delivered_is_ignored(session, clock, sent):
    report(session, clock, "delivered")
    delivered_at = clock.now()
    assert report(session, clock, "sent") is StatusOutcome.STALE
    message = current(session, sent)
    assert message.status == "delivered" and message.status_updated_at == delivered_at


def test_queued_and_sending_reports_say_nothing_new(session, clock, sent):
    assert report(session, clock, "queued") is StatusOutcome.NOT_A_STEP
    assert report(session, clock, "sending") is StatusOutcome.NOT_A_STEP
    assert current(session, sent).status == "sent"


def test_failures_are_final_and_say_why(session, clock, sent):
    assert report(session, clock, "undelivered", error_code="30005") is StatusOutcome.UPDATED
    message = current(session, sent)
    assert message.status == "undelivered"
    assert message.last_error == "twilio 30005: unknown or inactive number"
    assert report(session, clock, "delivered") is StatusOutcome.STALE
    assert report(session, clock, "failed") is StatusOutcome.STALE
    assert current(session, sent).status == "undelivered"


def test_a_failure_after_sent_is_recorded(session, clock, sent):
    report(session, clock, "failed", error_code="30007")
    message = current(session, sent)
    assert message.status == "failed" and "spam" in message.last_error


def test_an_unknown_message_is_acknowledged_and_ignored(session, clock, sent):
    assert report(session, clock, "delivered", sid="SM" + "f" * 32) is StatusOutcome.UNKNOWN_MESSAGE
    assert report(session, clock, "delivered", sid="") is StatusOutcome.UNKNOWN_MESSAGE
    assert current(session, sent).status == "sent"


def test_a_cancelled_message_is_never_revived(session, clock, sent):
    sent.status = "cancelled"
    session.add(sent)
    session.commit()
    assert report(session, clock, "delivered") is StatusOutcome.STALE
    assert current(session, sent).status == "cancelled"


def test_a_report_before_the_dispatcher_recorded_the_send_keeps_only_the_provider_id(
    session, clock, texter
):
    message = session.exec(select(OutboundMessage)).one()
    message.status = "sending"
    message.attempt_key = "k" * 16
    message.attempt_started_at = clock.now() - timedelta(seconds=1)
    session.add(message)
    session.commit()

    outcome = report(session, clock, "delivered", attempt_key="k" * 16)

    assert outcome is StatusOutcome.ID_RECORDED
    stored = current(session, message)
    assert stored.provider_message_id == SID
    assert stored.status == "sending"  # the dispatcher's record of the send decides
    # Once recorded as sent, the next report moves it forward as usual.
    stored.status = "sent"
    session.add(stored)
    session.commit()
    assert report(session, clock, "delivered", attempt_key="k" * 16) is StatusOutcome.UPDATED
    assert current(session, message).status == "delivered"
