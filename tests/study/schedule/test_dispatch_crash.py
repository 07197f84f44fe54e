"""Crash safety: a dispatcher may die at any point, and several may run at once; no invitation
is lost and none is sent twice. The fake Twilio's own record of created messages is the proof.

A crash is a `SimulatedCrash`, a BaseException: like a killed process, it skips the
dispatcher's error handling (which catches Exception) and leaves the database as it was.
"""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from study.channels import SendResult, StatusLookupUnsupported
from study.models import OutboundMessage
from study.schedule import dispatch as dispatch_module
from study.schedule.dispatch import claim_due
from tests.study.schedule import test_dispatch
from tests.study.schedule.test_dispatch import OWNER, Trial

# The example study with a fake Twilio behind the real SMS channel (see test_dispatch.py).
trial = test_dispatch.trial
LEASE = timedelta(minutes=2)


class SimulatedCrash(BaseException):
    """The dispatcher's process dies here."""


def crash_once(target, name, monkeypatch):
    """Make `target.name` kill the process the first time it is called, and work after."""
    original = getattr(target, name)
    calls = itertools.count()

    def dying(*args, **kwargs):
        if next(calls) == 0:
            raise SimulatedCrash(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, dying)


def lookups(trial: Trial) -> int:
    return sum(1 for request in trial.fake.requests if request.method == "GET")


# --- a single dispatcher dying ------------------------------------------------------------------


def test_a_dispatcher_that_dies_after_claiming_leaves_the_message_to_the_next_after_its_lease(
    trial,
):
    message = trial.invitation()
    assert claim_due(
        trial.engine, now=trial.clock.now(), owner="dead-host:1", batch=10, lease=LEASE
    ) == [message.id]

    assert trial.dispatch().claimed == 0
    trial.clock.advance(LEASE - timedelta(seconds=1))
    assert trial.dispatch().claimed == 0
    assert trial.fake.message_count == 0
    trial.clock.advance(seconds=1)
    report = trial.dispatch()

    assert (report.claimed, report.sent) == (1, 1)
    assert trial.fake.message_count == 1
    assert lookups(trial) == 0  # it never got as far as an attempt: nothing to ask about
    row = trial.row(message)
    assert (row.status, row.attempts) == ("sent", 1)


def test_a_dispatcher_that_dies_just_before_sending_is_checked_then_sent_once(trial, monkeypatch):
    message = trial.invitation()
    crash_once(dispatch_module._Run, "send", monkeypatch)

    with pytest.raises(SimulatedCrash):
        trial.dispatch()

    row = trial.row(message)
    assert (row.status, row.attempts, row.lease_owner) == ("sending", 1, OWNER)
    assert row.attempt_key
    assert trial.fake.message_count == 0
    trial.clock.advance(LEASE)
    report = trial.dispatch(owner="other-host:2")

    assert (report.sent, report.recovered) == (1, 0)
    assert lookups(trial) == 1
    assert trial.fake.message_count == 1
    row = trial.row(message)
    assert (row.status, row.attempts) == ("sent", 2)


@pytest.mark.parametrize("moment", ["as Twilio accepts", "before the record commits"])
def test_a_dispatcher_that_dies_after_sending_is_never_resent(trial, monkeypatch, moment):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    message = trial.message(participant, occasion)
    if moment == "as Twilio accepts":
        # The message is created at Twilio; the process dies before the reply arrives.
        trial.fake.on_create = lambda created: None
        crash_once(trial.fake, "on_create", monkeypatch)
    else:
        crash_once(dispatch_module._Run, "record_sent", monkeypatch)
    sent_at = trial.clock.now()

    with pytest.raises(SimulatedCrash):
        trial.dispatch()

    [sms] = trial.fake.messages
    row = trial.row(message)
    assert (row.status, row.provider_message_id) == ("sending", "")
    assert trial.occasion_status(occasion.id) == "scheduled"
    trial.clock.advance(LEASE)
    report = trial.dispatch(owner="other-host:2")

    assert (report.recovered, report.sent) == (1, 0)
    assert trial.fake.message_count == 1
    row = trial.row(message)
    assert (row.status, row.provider_message_id, row.sent_at) == ("sent", sms.sid, sent_at)
    assert trial.occasion_status(occasion.id) == "sent"
    trial.clock.advance(LEASE)
    assert trial.dispatch().claimed == 0
    assert trial.fake.message_count == 1


def test_a_response_lost_on_the_way_back_is_found_at_twilio_not_resent(trial):
    message = trial.invitation()
    trial.fake.lose_responses()

    first = trial.dispatch()
    trial.clock.advance(seconds=30)
    second = trial.dispatch()

    assert (first.retrying, second.recovered, second.sent) == (1, 1, 0)
    assert trial.fake.message_count == 1
    assert trial.row(message).provider_message_id == trial.fake.messages[0].sid


def test_a_message_found_after_a_crash_takes_its_current_status_from_twilio(trial, monkeypatch):
    message = trial.invitation()
    crash_once(dispatch_module._Run, "record_sent", monkeypatch)
    with pytest.raises(SimulatedCrash):
        trial.dispatch()
    trial.fake.set_status(trial.fake.messages[0].sid, "delivered")
    trial.clock.advance(LEASE)

    trial.dispatch()

    assert trial.row(message).status == "delivered"


def test_when_twilio_cannot_be_asked_the_message_waits_rather_than_going_twice(trial, monkeypatch):
    message = trial.invitation()
    crash_once(dispatch_module._Run, "record_sent", monkeypatch)
    with pytest.raises(SimulatedCrash):
        trial.dispatch()
    trial.clock.advance(LEASE)
    trial.fake.fail_next(status=503)

    report = trial.dispatch()

    row = trial.row(message)
    assert (report.retrying, row.status, row.attempts) == (1, "pending", 1)
    assert row.last_error.startswith("provider lookup:")
    assert trial.fake.message_count == 1
    trial.clock.set(row.send_after)
    assert trial.dispatch().recovered == 1
    assert trial.fake.message_count == 1


def test_a_delivery_report_that_arrived_before_the_crash_settles_it_without_asking_twilio(
    trial, monkeypatch
):
    message = trial.invitation()
    crash_once(dispatch_module._Run, "record_sent", monkeypatch)
    with pytest.raises(SimulatedCrash):
        trial.dispatch()
    [sms] = trial.fake.messages
    # The status webhook matched the callback's attempt key and kept Twilio's id on the row.
    with Session(trial.engine) as session:
        row = session.get(OutboundMessage, message.id)
        assert sms.status_callback.endswith(f"?attempt={row.attempt_key}")
        row.provider_message_id = sms.sid
        session.add(row)
        session.commit()
    trial.clock.advance(LEASE)

    report = trial.dispatch()

    assert report.recovered == 1
    assert lookups(trial) == 0
    assert trial.fake.message_count == 1
    row = trial.row(message)
    assert (row.status, row.provider_message_id) == ("sent", sms.sid)


def test_a_window_that_closed_while_the_dispatcher_was_down_still_records_what_went_out(
    trial, monkeypatch
):
    participant = trial.enrol()
    occasion = trial.occasion(participant, window=timedelta(minutes=30))
    message = trial.message(participant, occasion)
    crash_once(dispatch_module._Run, "record_sent", monkeypatch)
    with pytest.raises(SimulatedCrash):
        trial.dispatch()
    trial.clock.advance(hours=2)

    trial.dispatch()

    assert trial.row(message).status == "sent"
    assert trial.occasion_status(occasion.id) == "sent"
    assert trial.fake.message_count == 1


def test_a_dispatcher_that_wakes_after_its_lease_was_taken_over_sends_nothing(trial, monkeypatch):
    message = trial.invitation()
    stale = claim_due(trial.engine, now=trial.clock.now(), owner="slow:1", batch=10, lease=LEASE)
    trial.clock.advance(LEASE)
    trial.dispatch(owner="fast:2")
    assert trial.fake.message_count == 1

    # The slow one resumes with the rows it once claimed.
    monkeypatch.setattr(dispatch_module, "claim_due", lambda *args, **kwargs: stale)
    report = trial.dispatch(owner="slow:1")

    assert (report.lost, report.sent) == (1, 0)
    assert trial.fake.message_count == 1
    assert trial.row(message).status == "sent"


class UnqueryableEmail:
    """An email channel like SMTP: it sends, but its provider cannot be asked afterwards."""

    name = "email"
    supports_status_lookup = False

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to, body, *, subject=None, status_callback=None):
        self.sent.append(body)
        return SendResult(f"<{len(self.sent)}@mail.example.org>")

    def find_sent(self, to, *, since, body):
        raise StatusLookupUnsupported("SMTP cannot be asked")


def test_channels_that_cannot_be_asked_are_at_least_once_after_a_crash(trial, monkeypatch):
    """Documented: SMTP accepts and forgets. A crash between its acceptance and our commit
    sends the email again, each time with its own Message-ID recorded."""
    email = UnqueryableEmail()
    trial.channels["email"] = email
    participant = trial.enrol()
    message = trial.message(participant, trial.occasion(participant), channel="email")
    crash_once(dispatch_module._Run, "record_sent", monkeypatch)
    with pytest.raises(SimulatedCrash):
        trial.dispatch()
    trial.clock.advance(LEASE)

    trial.dispatch()

    assert len(email.sent) == 2
    row = trial.row(message)
    assert (row.status, row.provider_message_id, row.attempts) == (
        "sent",
        "<2@mail.example.org>",
        2,
    )


# --- several dispatchers at once ----------------------------------------------------------------


def test_concurrent_dispatchers_send_every_message_exactly_once(trial):
    """Two dispatchers in two threads over 200 due messages (on SQLite and on PostgreSQL, where
    the claim is `FOR UPDATE SKIP LOCKED`)."""
    participants = [trial.enrol() for _ in range(10)]
    messages = [
        trial.message(participant, trial.occasion(participant))
        for participant in participants
        for _ in range(20)
    ]
    start = threading.Barrier(2)
    claimed: dict[str, int] = {}
    errors: list[BaseException] = []

    def dispatcher(owner: str) -> None:
        try:
            start.wait()
            total = 0
            while True:
                report = trial.dispatch(owner=owner, batch=15)
                total += report.claimed
                if report.claimed == 0:
                    break
            claimed[owner] = total
        except BaseException as error:  # surfaced below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=dispatcher, args=(f"host-{n}:{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(claimed.values()) == 200
    assert trial.fake.message_count == 200
    assert len({sms.body for sms in trial.fake.messages}) == 200
    with Session(trial.engine) as session:
        rows = session.exec(
            select(OutboundMessage).where(
                OutboundMessage.id.in_([m.id for m in messages])  # type: ignore[union-attr]
            )
        ).all()
    assert {row.status for row in rows} == {"sent"}
    assert {row.provider_message_id for row in rows} == {sms.sid for sms in trial.fake.messages}
