"""Retrying a failed send: a new pending row, the failed one kept as it was, audited; refusals
for what cannot or need not be retried. On SQLite and PostgreSQL, on the dashboards' small
study (tests/dashboards/conftest.py), at 2026-03-02 09:00 UTC."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from study.models import AuditEvent, OutboundMessage
from study.pii import PiiVault
from study.schedule.retry import retry_failed
from tests.dashboards.conftest import build_small_study

ACTOR = "researcher:coordinator@example.org"


@pytest.fixture
def small(session):
    return build_small_study(session, PiiVault(Fernet.generate_key().decode()))


def test_a_failed_send_is_queued_again_as_a_new_message(session, small, clock):
    undelivered = small.messages["C001-2"]  # wave 2 of P-C001, window open until 3 March
    outcome = retry_failed(session, [undelivered], now=clock.now(), actor=ACTOR)
    session.commit()
    assert list(outcome.requeued) == [undelivered] and outcome.refused == {}
    fresh = session.get(OutboundMessage, outcome.requeued[undelivered])
    old = session.get(OutboundMessage, undelivered)
    assert (fresh.status, fresh.send_after, fresh.attempts) == ("pending", clock.now(), 0)
    assert (fresh.occasion_id, fresh.channel, fresh.purpose) == (
        old.occasion_id,
        "sms",
        "invitation",
    )
    assert fresh.attempt_key == "" and fresh.provider_message_id == ""
    assert old.status == "undelivered"  # the failure stays on record
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "message.retried")).all()
    assert (event.actor, event.entity_id) == (ACTOR, str(undelivered))
    assert event.details["new_message_id"] == fresh.id
    assert event.details["participant"] == "P-C001"


def test_a_second_retry_while_one_waits_is_refused(session, small, clock):
    undelivered = small.messages["C001-2"]
    retry_failed(session, [undelivered], now=clock.now(), actor=ACTOR)
    again = retry_failed(session, [undelivered], now=clock.now(), actor=ACTOR)
    assert again.requeued == {}
    assert again.refused[undelivered].startswith("a retry is already queued")


def test_what_cannot_be_retried_is_refused_with_the_reason(session, small, clock):
    outcome = retry_failed(
        session,
        [small.messages["A002-1"], small.messages["A001-2"], 999_999],
        now=clock.now(),
        actor=ACTOR,
        study_id=small.study_id,
    )
    assert outcome.requeued == {}
    assert outcome.refused == {
        small.messages["A002-1"]: "its window has closed",  # wave 1 closed on 11 February
        small.messages["A001-2"]: "not a failed message",  # still pending
        999_999: "not a failed message",
    }


def test_a_message_of_another_study_is_refused(session, small, clock):
    outcome = retry_failed(
        session, [small.messages["C001-2"]], now=clock.now(), actor=ACTOR, study_id=-1
    )
    assert outcome.refused == {small.messages["C001-2"]: "not a message of this study"}


def test_an_actor_is_required(session, small, clock):
    with pytest.raises(ValueError, match="actor"):
        retry_failed(session, [small.messages["C001-2"]], now=clock.now(), actor=" ")
