"""The dispatcher: due invitations go out once, through the real Twilio client against a fake
Twilio, after re-checking everything that may have changed since they were planned.

The fixtures here (a registered example study, enrolled participants, occasions and outbox rows
made directly) are shared with test_dispatch_crash.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from consent import sign, withdraw
from study.channels import TransientSendError, build_channels
from study.config import Settings
from study.models import AuditEvent, Consent, ContactPoint, Occasion, OutboundMessage, Participant
from study.models.schedule import SendBudget
from study.pii import PiiVault
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from study.schedule import dispatch as dispatch_module
from study.schedule.dispatch import (
    DispatchPolicy,
    claim_due,
    dispatch_due,
    dispatch_task,
    end_of_quiet_hours,
)
from study.schedule.links import verify_survey_token
from study.scheduler import standard_tasks, tick_once
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"
TWILIO_FROM = "+15005550006"
OWNER = "test-host:101"
UNLIMITED = DispatchPolicy(rates={})


@dataclass
class Trial:
    """The example study on a fresh database, with a fake Twilio behind the real SMS channel."""

    engine: object
    settings: object
    clock: object
    fake: FakeTwilio
    channels: dict
    protocol: object
    registration: object
    vault: PiiVault
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def enrol(self, *, timezone: str = "Europe/London", contacts=("sms", "email")) -> Participant:
        """An enrolled participant with an active consent and the given contact points."""
        number = next(self.numbers)
        now = self.clock.now()
        with Session(self.engine, expire_on_commit=False) as session:
            participant = Participant(
                study_id=self.registration.study.id,
                code=f"P-DISP{number:04d}",
                status="enrolled",
                protocol_version_id=self.registration.version.id,
                timezone=timezone,
                preferred_channel="sms",
                enrolled_at=now,
            )
            session.add(participant)
            session.flush()
            values = {"sms": self.phone(participant), "email": self.email(participant)}
            for kind in contacts:
                session.add(
                    ContactPoint(
                        participant_id=participant.id,
                        kind=kind,
                        value_encrypted=self.vault.encrypt(values[kind]),
                        lookup_hash=self.vault.lookup_hash(kind, values[kind]),
                    )
                )
            sign(
                session,
                self.vault,
                participant=participant,
                protocol=self.protocol,
                signed_name="Test Participant",
                options={},
                now=now,
                actor=f"participant:{participant.code}",
            )
            participant.status = "enrolled"
            session.add(participant)
            session.commit()
            return participant

    @staticmethod
    def phone(participant: Participant) -> str:
        return f"+4477009{participant.id:05d}"

    @staticmethod
    def email(participant: Participant) -> str:
        return f"participant{participant.id}@example.org"

    def occasion(
        self, participant: Participant, *, due=None, window=timedelta(hours=48), status="scheduled"
    ) -> Occasion:
        due = due or self.clock.now()
        with Session(self.engine, expire_on_commit=False) as session:
            occasion = Occasion(
                participant_id=participant.id,
                protocol_version_id=self.registration.version.id,
                schedule_key="weekly",
                wave=1,
                kind="wave",
                instruments=["who5"],
                due_at=due,
                closes_at=due + window,
                status=status,
            )
            session.add(occasion)
            session.commit()
            return occasion

    def message(
        self,
        participant: Participant,
        occasion: Occasion,
        *,
        channel: str = "sms",
        purpose: str = "invitation",
        send_after=None,
    ) -> OutboundMessage:
        """A pending outbox row, as the planner writes it (body left to the dispatcher)."""
        with Session(self.engine, expire_on_commit=False) as session:
            message = OutboundMessage(
                participant_id=participant.id,
                occasion_id=occasion.id,
                channel=channel,
                purpose=purpose,
                send_after=send_after or occasion.due_at,
                expires_at=occasion.closes_at,
            )
            session.add(message)
            session.commit()
            return message

    def invitation(self, participant=None, **kwargs) -> OutboundMessage:
        participant = participant or self.enrol()
        return self.message(participant, self.occasion(participant), **kwargs)

    def dispatch(self, *, owner: str = OWNER, policy=UNLIMITED, **kwargs):
        return dispatch_due(
            self.engine,
            self.channels,
            self.settings,
            now=self.clock.now(),
            owner=owner,
            policy=policy,
            **kwargs,
        )

    def get(self, model, key):
        with Session(self.engine) as session:
            return session.get(model, key)

    def row(self, message: OutboundMessage) -> OutboundMessage:
        return self.get(OutboundMessage, message.id)

    def occasion_status(self, occasion_id: int) -> str:
        return self.get(Occasion, occasion_id).status


@pytest.fixture
def trial(engine, settings, clock) -> Trial:
    return make_trial(engine, settings, clock)


def make_trial(engine, settings, clock) -> Trial:
    """The example study registered on `engine`, sending SMS through a fake Twilio."""
    settings = dataclasses.replace(
        settings,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=TWILIO_FROM,
    )
    fake = FakeTwilio(clock=clock)
    protocol = load_protocol(EXAMPLE)
    with Session(engine, expire_on_commit=False) as session:
        registration = register_protocol(session, protocol, actor="test")
        session.commit()
    return Trial(
        engine=engine,
        settings=settings,
        clock=clock,
        fake=fake,
        channels=build_channels(settings, twilio_http_client=fake, clock=clock),
        protocol=protocol,
        registration=registration,
        vault=PiiVault(settings.pii_key),
    )


def link_in(text: str) -> str:
    match = re.search(r"https://study\.example\.org/s/(\S+)", text)
    assert match, f"no survey link in {text!r}"
    return match.group(1)


# --- sending ------------------------------------------------------------------------------------


def test_a_due_invitation_is_sent_once_with_its_survey_link_and_recorded(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    message = trial.message(participant, occasion)

    report = trial.dispatch()

    [sms] = trial.fake.messages
    assert sms.to == trial.phone(participant)
    assert sms.from_ == TWILIO_FROM
    assert "Reply STOP to opt out" in sms.body
    assert verify_survey_token(trial.settings, link_in(sms.body)) == occasion.id
    row = trial.row(message)
    assert (row.status, row.provider_message_id, row.sent_at) == (
        "sent",
        sms.sid,
        trial.clock.now(),
    )
    assert (row.attempts, row.lease_owner, row.lease_expires_at) == (1, "", None)
    assert row.body == sms.body
    assert sms.status_callback == (
        f"https://study.example.org/twilio/status?attempt={row.attempt_key}"
    )
    assert trial.occasion_status(occasion.id) == "sent"
    assert (report.claimed, report.sent) == (1, 1)

    assert trial.dispatch().claimed == 0
    assert trial.fake.message_count == 1


def test_a_message_is_not_sent_before_it_is_due(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant, due=trial.clock.now() + timedelta(hours=1))
    message = trial.message(participant, occasion)

    assert trial.dispatch().claimed == 0
    trial.clock.advance(minutes=59, seconds=59)
    assert trial.dispatch().claimed == 0
    trial.clock.advance(seconds=1)
    assert trial.dispatch().sent == 1
    assert trial.row(message).status == "sent"


def test_an_email_invitation_goes_by_email_with_a_subject_and_a_withdraw_link(trial):
    participant = trial.enrol()
    message = trial.message(participant, trial.occasion(participant), channel="email")

    trial.dispatch()

    [email] = trial.channels["email"].outbox
    assert email.to == trial.email(participant)
    assert email.subject and "questionnaire" in email.subject
    assert "https://study.example.org/p/" in email.body
    assert email.status_callback is None
    assert trial.row(message).provider_message_id == email.provider_message_id
    assert trial.fake.message_count == 0


def test_each_message_gets_its_own_link_to_the_same_occasion(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    trial.message(participant, occasion, channel="sms")
    trial.message(participant, occasion, channel="email")

    trial.dispatch()

    [sms] = trial.fake.messages
    [email] = trial.channels["email"].outbox
    tokens = {link_in(sms.body), link_in(email.body)}
    assert len(tokens) == 2
    assert {verify_survey_token(trial.settings, token) for token in tokens} == {occasion.id}


def test_the_oldest_due_messages_go_first_and_a_batch_is_a_limit(trial):
    participant = trial.enrol()
    now = trial.clock.now()
    late = trial.message(participant, trial.occasion(participant, due=now - timedelta(minutes=1)))
    early = trial.message(participant, trial.occasion(participant, due=now - timedelta(hours=1)))

    report = trial.dispatch(batch=1)

    assert (report.claimed, report.sent) == (1, 1)
    assert trial.row(early).status == "sent"
    assert trial.row(late).status == "pending"


# --- re-checks at send time ---------------------------------------------------------------------


def test_a_participant_no_longer_enrolled_is_not_contacted(trial):
    participant = trial.enrol()
    message = trial.invitation(participant)
    with Session(trial.engine) as session:
        row = session.get(Participant, participant.id)
        row.status = "completed"
        session.add(row)
        session.commit()

    report = trial.dispatch()

    row = trial.row(message)
    assert (row.status, row.last_error) == ("cancelled", "cancelled: participant completed")
    assert report.cancelled == 1
    assert trial.fake.message_count == 0


def test_a_withdrawn_consent_cancels_the_message(trial):
    participant = trial.enrol()
    message = trial.invitation(participant)
    with Session(trial.engine) as session:
        consent = session.exec(
            select(Consent).where(Consent.participant_id == participant.id)
        ).one()
        consent.withdrawn_at = trial.clock.now()
        session.add(consent)
        session.commit()

    trial.dispatch()

    assert trial.row(message).last_error == "cancelled: no active consent"
    assert trial.fake.message_count == 0


def test_an_opted_out_number_is_not_texted_but_email_still_goes(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    sms = trial.message(participant, occasion, channel="sms")
    email = trial.message(participant, occasion, channel="email")
    with Session(trial.engine) as session:
        contact = session.exec(
            select(ContactPoint).where(
                ContactPoint.participant_id == participant.id, ContactPoint.kind == "sms"
            )
        ).one()
        contact.opted_out_at = trial.clock.now()
        session.add(contact)
        session.commit()

    trial.dispatch()

    assert (trial.row(sms).status, trial.row(sms).last_error) == (
        "cancelled",
        "cancelled: sms opted out",
    )
    assert trial.row(email).status == "sent"
    assert trial.fake.message_count == 0


def test_a_message_without_a_contact_point_is_cancelled(trial):
    participant = trial.enrol(contacts=("email",))
    message = trial.invitation(participant, channel="sms")

    trial.dispatch()

    assert trial.row(message).last_error == "cancelled: no sms contact"


def test_a_withdrawal_after_the_claim_stops_the_send(trial, monkeypatch):
    participant = trial.enrol()
    message = trial.invitation(participant)
    claimed = claim_due(
        trial.engine, now=trial.clock.now(), owner=OWNER, batch=10, lease=timedelta(minutes=2)
    )
    assert claimed == [message.id]
    with Session(trial.engine) as session:
        withdraw(
            session,
            participant=session.get(Participant, participant.id),
            protocol=trial.protocol,
            now=trial.clock.now(),
            actor="test",
        )
        session.commit()
    # The claim is done; carry on as the dispatcher would with the rows it holds.
    monkeypatch.setattr(dispatch_module, "claim_due", lambda *args, **kwargs: claimed)

    report = trial.dispatch()

    assert report.lost == 1
    assert trial.row(message).status == "cancelled"
    assert trial.fake.message_count == 0


# --- windows, downtime, reminders ---------------------------------------------------------------


def test_after_downtime_an_invitation_whose_window_is_open_is_still_sent(trial):
    message = trial.invitation()
    trial.clock.advance(hours=47)

    trial.dispatch()

    assert trial.row(message).status == "sent"
    assert trial.fake.message_count == 1


def test_after_downtime_past_the_window_the_invitation_expires_and_the_occasion_is_missed(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    sms = trial.message(participant, occasion, channel="sms")
    email = trial.message(participant, occasion, channel="email")
    trial.clock.advance(hours=48)

    report = trial.dispatch()

    assert {trial.row(sms).status, trial.row(email).status} == {"expired"}
    assert trial.occasion_status(occasion.id) == "missed"
    assert report.expired == 2
    assert trial.fake.message_count == 0


def test_an_expired_reminder_leaves_an_occasion_that_was_sent_alone(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    trial.message(participant, occasion)
    reminder = trial.message(
        participant, occasion, purpose="reminder", send_after=trial.clock.now() + timedelta(days=1)
    )
    trial.dispatch()
    trial.clock.advance(days=3)

    trial.dispatch()

    assert trial.row(reminder).status == "expired"
    assert trial.occasion_status(occasion.id) == "sent"


def test_reminders_are_cancelled_once_the_occasion_is_completed(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    trial.message(participant, occasion)
    reminder = trial.message(
        participant, occasion, purpose="reminder", send_after=trial.clock.now() + timedelta(days=1)
    )
    trial.dispatch()
    with Session(trial.engine) as session:
        row = session.get(Occasion, occasion.id)
        row.status, row.completed_at = "completed", trial.clock.now()
        session.add(row)
        session.commit()
    trial.clock.advance(days=1)

    trial.dispatch()

    row = trial.row(reminder)
    assert (row.status, row.last_error) == ("cancelled", "cancelled: occasion completed")
    assert trial.fake.message_count == 1


def test_a_reminder_for_an_occasion_still_open_is_sent_as_a_reminder(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    trial.message(participant, occasion)
    trial.message(
        participant, occasion, purpose="reminder", send_after=trial.clock.now() + timedelta(days=1)
    )
    trial.dispatch()
    trial.clock.advance(days=1)

    trial.dispatch()

    first, second = trial.fake.messages
    assert "reminder" not in first.body
    assert "reminder" in second.body


# --- quiet hours --------------------------------------------------------------------------------


def test_quiet_hours_defer_a_message_to_their_end_in_the_participants_time(trial):
    # 09:00 UTC is 04:00 in New York (EST): inside the example's quiet hours, 21:30-08:00.
    participant = trial.enrol(timezone="America/New_York")
    message = trial.invitation(participant)

    report = trial.dispatch()

    row = trial.row(message)
    assert report.deferred_quiet == 1
    assert (row.status, row.lease_owner, row.attempts) == ("pending", "", 0)
    assert row.send_after == trial.clock.now().replace(hour=13)  # 08:00 EST
    assert trial.fake.message_count == 0

    trial.clock.advance(hours=3, minutes=59)
    assert trial.dispatch().claimed == 0
    trial.clock.advance(minutes=1)
    assert trial.dispatch().sent == 1


def test_the_same_instant_is_not_quiet_where_it_is_daytime(trial):
    participant = trial.enrol(timezone="Asia/Kolkata")  # 14:30 there
    message = trial.invitation(participant)

    trial.dispatch()

    assert trial.row(message).status == "sent"


def test_quiet_hours_that_end_in_a_dst_gap_end_when_the_clocks_change(trial):
    quiet = trial.protocol.model.channels.quiet_hours.model_copy(
        update={"start": time(1, 0), "end": time(2, 30)}
    )
    protocol = _with_quiet_hours(trial.protocol, quiet)
    # 2026-03-08 01:30 EST in New York; at 02:00 the clocks jump to 03:00 EDT.
    now = trial.clock.now().replace(day=8, hour=6, minute=30)

    until = end_of_quiet_hours(protocol, "America/New_York", now)

    assert until == now.replace(hour=7, minute=0)  # 03:00 EDT, the first valid instant


def _with_quiet_hours(protocol, quiet):
    channels = protocol.model.channels.model_copy(update={"quiet_hours": quiet})
    model = protocol.model.model_copy(update={"channels": channels})
    return dataclasses.replace(protocol, model=model)


# --- rate limits --------------------------------------------------------------------------------


def test_the_sms_rate_limit_holds_a_burst_back_for_later_ticks(trial):
    participant = trial.enrol()
    messages = [trial.invitation(participant) for _ in range(8)]
    policy = DispatchPolicy(rates={"sms": 1.0}, bursts={"sms": 5})

    first = trial.dispatch(policy=policy)

    assert (first.sent, first.deferred_rate) == (5, 3)
    assert trial.fake.message_count == 5
    held = [trial.row(m) for m in messages if trial.row(m).status == "pending"]
    assert len(held) == 3 and all(row.attempts == 0 and row.lease_owner == "" for row in held)

    trial.clock.advance(seconds=2)
    assert trial.dispatch(policy=policy).sent == 2
    trial.clock.advance(seconds=1)
    assert trial.dispatch(policy=policy).sent == 1
    assert trial.fake.message_count == 8


def test_the_rate_budget_is_shared_by_every_dispatcher(trial):
    participant = trial.enrol()
    for _ in range(6):
        trial.invitation(participant)
    policy = DispatchPolicy(rates={"sms": 1.0}, bursts={"sms": 3})

    sent = [trial.dispatch(owner=owner, policy=policy, batch=3).sent for owner in ("a:1", "b:2")]

    assert sent == [3, 0]
    with Session(trial.engine) as session:
        assert session.get(SendBudget, "sms").tokens == pytest.approx(0.0)


def test_rate_limits_are_per_channel(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    for _ in range(3):
        trial.message(participant, occasion, channel="sms")
        trial.message(participant, occasion, channel="email")
    policy = DispatchPolicy(rates={"sms": 1.0, "email": None}, bursts={"sms": 1})

    report = trial.dispatch(policy=policy)

    assert (report.sent, report.deferred_rate) == (4, 2)
    assert len(trial.channels["email"].outbox) == 3


def test_the_policy_is_read_from_the_environment(tmp_path, settings):
    configured = Settings.from_env(
        {
            "FLOURISH_INSTANCE_PATH": str(tmp_path),
            "FLOURISH_SCHEDULER_TICK_SECONDS": "10",
            "FLOURISH_SMS_PER_SECOND": "2",
            "FLOURISH_EMAIL_PER_SECOND": "0",
        }
    )

    policy = DispatchPolicy.from_settings(configured)

    assert policy.rates == {"sms": 2.0, "email": None}
    assert policy.burst("sms", 2.0) == 20.0
    assert DispatchPolicy.from_settings(settings).rates == {"sms": 1.0, "email": 5.0}


# --- failures -----------------------------------------------------------------------------------


class BusySms:
    """The real SMS channel, except that its next `failures` sends are refused as busy (lookups
    still reach the fake Twilio)."""

    def __init__(self, channel, failures: int) -> None:
        self.channel, self.failures = channel, failures
        self.name, self.supports_status_lookup = channel.name, channel.supports_status_lookup

    def send(self, to, body, **kwargs):
        if self.failures:
            self.failures -= 1
            raise TransientSendError("Twilio busy or failing: HTTP 503", code=503)
        return self.channel.send(to, body, **kwargs)

    def find_sent(self, to, **kwargs):
        return self.channel.find_sent(to, **kwargs)


def test_a_transient_failure_is_retried_with_exponential_backoff_then_fails(trial):
    message = trial.invitation()
    policy = DispatchPolicy(rates={}, retry_base=timedelta(seconds=30), max_attempts=3)
    trial.channels["sms"] = BusySms(trial.channels["sms"], failures=3)

    waits = []
    for _ in range(2):
        trial.dispatch(policy=policy)
        row = trial.row(message)
        assert row.status == "pending" and "503" in row.last_error
        waits.append(row.send_after - trial.clock.now())
        trial.clock.set(row.send_after)
    report = trial.dispatch(policy=policy)

    assert waits == [timedelta(seconds=30), timedelta(seconds=60)]
    row = trial.row(message)
    assert (row.status, row.attempts, report.failed) == ("failed", 3, 1)
    trial.clock.advance(hours=1)
    assert trial.dispatch(policy=policy).claimed == 0
    assert trial.fake.message_count == 0


def test_a_retry_first_asks_the_provider_whether_the_last_attempt_went_out(trial):
    participant = trial.enrol()
    message = trial.invitation(participant)
    trial.channels["sms"] = BusySms(trial.channels["sms"], failures=1)
    trial.dispatch()
    first_key = trial.row(message).attempt_key
    trial.clock.advance(seconds=30)

    trial.dispatch()

    lookups = [r for r in trial.fake.requests if r.method == "GET"]
    assert [lookup.params.get("To") for lookup in lookups] == [trial.phone(participant)]
    row = trial.row(message)
    assert row.status == "sent" and row.attempt_key != first_key
    assert trial.fake.message_count == 1


def test_a_transient_failure_then_success_sends_exactly_once(trial):
    message = trial.invitation()
    trial.fake.fail_network()

    trial.dispatch()
    trial.clock.advance(seconds=30)
    trial.dispatch()

    row = trial.row(message)
    assert (row.status, row.attempts) == ("sent", 2)
    assert trial.fake.message_count == 1


def test_backoff_is_capped(trial):
    policy = DispatchPolicy(retry_base=timedelta(minutes=1), retry_cap=timedelta(minutes=5))

    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 5)]


def test_a_permanent_failure_is_not_retried(trial):
    participant = trial.enrol()
    message = trial.invitation(participant)
    trial.fake.reject(trial.phone(participant), code=21614)

    report = trial.dispatch()
    trial.clock.advance(hours=1)
    trial.dispatch()

    row = trial.row(message)
    assert (row.status, row.attempts, report.failed) == ("failed", 1, 1)
    assert "21614" in row.last_error
    assert trial.get(Occasion, row.occasion_id).status == "scheduled"
    contact = _contact(trial, participant, "sms")
    assert contact.opted_out_at is None


def test_a_carrier_opt_out_is_mirrored_on_the_contact_point_and_audited(trial):
    participant = trial.enrol()
    first = trial.invitation(participant)
    trial.fake.reject(trial.phone(participant), code=21610)

    trial.dispatch()
    later = trial.invitation(participant)
    trial.dispatch()

    assert trial.row(first).status == "failed"
    assert trial.row(later).last_error == "cancelled: sms opted out"
    contact = _contact(trial, participant, "sms")
    assert contact.opted_out_at == trial.clock.now()
    with Session(trial.engine) as session:
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "contact.opt_out")
        ).all()
    assert event.entity_id == str(contact.id)
    assert "21610" in event.details["source"]


def _contact(trial, participant, kind) -> ContactPoint:
    with Session(trial.engine) as session:
        return session.exec(
            select(ContactPoint).where(
                ContactPoint.participant_id == participant.id, ContactPoint.kind == kind
            )
        ).one()


def test_a_channel_that_is_not_configured_fails_the_message(trial):
    participant = trial.enrol()
    message = trial.invitation(participant)
    trial.channels = {"email": trial.channels["email"]}

    trial.dispatch()

    assert trial.row(message).last_error == "failed: no 'sms' channel is configured"


def test_an_unexpected_error_puts_the_message_back_for_a_retry(trial, monkeypatch, caplog):
    message = trial.invitation()

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(dispatch_module, "render_invitation", broken)
    trial.dispatch()

    row = trial.row(message)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 1, "")
    assert row.send_after > trial.clock.now()
    assert "template exploded" in caplog.text
    monkeypatch.undo()
    trial.clock.set(row.send_after)
    trial.dispatch()
    assert trial.row(message).status == "sent"


# --- leases and claims --------------------------------------------------------------------------


def test_a_claim_takes_each_row_once_and_an_expired_lease_makes_it_claimable_again(trial):
    messages = [trial.invitation() for _ in range(3)]
    now = trial.clock.now()
    lease = timedelta(minutes=2)

    first = claim_due(trial.engine, now=now, owner="a:1", batch=2, lease=lease)
    second = claim_due(trial.engine, now=now, owner="b:2", batch=10, lease=lease)
    third = claim_due(
        trial.engine, now=now + lease - timedelta(seconds=1), owner="c:3", batch=10, lease=lease
    )
    after_expiry = claim_due(trial.engine, now=now + lease, owner="d:4", batch=10, lease=lease)

    assert first == [messages[0].id, messages[1].id]
    assert second == [messages[2].id]
    assert third == []
    assert sorted(after_expiry) == sorted(m.id for m in messages)
    row = trial.row(messages[0])
    assert (row.status, row.lease_owner, row.lease_expires_at) == (
        "sending",
        "d:4",
        now + 2 * lease,
    )


def test_a_slow_batch_gives_back_what_it_cannot_send_within_its_lease(trial, monkeypatch):
    messages = [trial.invitation() for _ in range(3)]
    # Seconds on the batch's stopwatch at each look: the start, then before each message.
    ticks = itertools.chain([0.0, 0.0, 30.0, 61.0], itertools.repeat(61.0))
    monkeypatch.setattr(dispatch_module, "monotonic", lambda: next(ticks))

    report = trial.dispatch(lease=timedelta(minutes=2))

    assert (report.sent, report.released) == (2, 1)
    row = trial.row(messages[2])
    assert (row.status, row.lease_owner, row.attempts) == ("pending", "", 0)
    assert trial.dispatch().sent == 1


# --- the tick task ------------------------------------------------------------------------------


def test_the_dispatch_task_is_registered_with_every_scheduler(settings):
    assert "dispatch" in [task.name for task in standard_tasks(settings)]


def test_a_tick_dispatches_what_is_due_as_of_the_tickers_clock(trial):
    message = trial.invitation()
    task = dispatch_task(trial.settings, channels=trial.channels)

    outcome = tick_once(trial.engine, trial.clock, [task])

    assert outcome.failed == ()
    row = trial.row(message)
    assert (row.status, row.sent_at) == ("sent", trial.clock.now())
    assert trial.fake.message_count == 1


def test_the_standard_tasks_send_through_the_configured_channels(engine, settings, clock, trial):
    message = trial.invitation()
    console = dataclasses.replace(trial.settings, twilio_account_sid="", twilio_auth_token="")

    outcome = tick_once(engine, clock, standard_tasks(console))

    assert outcome.failed == ()
    row = trial.row(message)
    assert row.status == "sent" and row.provider_message_id.startswith("console-sms-")
    assert trial.fake.message_count == 0


def test_a_planned_schedule_goes_out_on_time_through_the_ticker(trial):
    """From planning to the participant's phone: ten days of hourly ticks over what
    `materialise` wrote at enrollment; the baseline is completed on the second day."""
    from study.schedule import materialise, schedule_seed

    participant = trial.enrol(timezone="Europe/London")
    with Session(trial.engine, expire_on_commit=False) as session:
        materialise(
            session,
            session.get(Participant, participant.id),
            trial.protocol,
            trial.registration.version.id,
            now=trial.clock.now(),
            seed=schedule_seed(trial.settings.secret_key, trial.protocol.slug),
        )
        session.commit()
    task = dispatch_task(trial.settings, channels=trial.channels)
    start = trial.clock.now()

    for hour in range(24 * 10):
        assert tick_once(trial.engine, trial.clock, [task]).failed == ()
        if hour == 30:
            with Session(trial.engine) as session:
                baseline = session.exec(
                    select(Occasion).where(Occasion.schedule_key == "baseline")
                ).one()
                baseline.status, baseline.completed_at = "completed", trial.clock.now()
                session.add(baseline)
                session.commit()
        trial.clock.advance(hours=1)

    with Session(trial.engine) as session:
        rows = session.exec(
            select(OutboundMessage).where(OutboundMessage.send_after < trial.clock.now())
        ).all()
        occasions = {o.id: o for o in session.exec(select(Occasion)).all()}
    sent = [row for row in rows if row.status == "sent"]
    assert {(occasions[r.occasion_id].schedule_key, r.purpose) for r in sent} == {
        ("baseline", "invitation"),
        ("baseline", "reminder"),  # the one at 24 h; the one at 72 h came after completion
        ("weekly", "invitation"),
        ("weekly", "reminder"),
    }
    [late_reminder] = [row for row in rows if row.status == "cancelled"]
    assert late_reminder.send_after == start + timedelta(hours=72)
    assert late_reminder.last_error == "cancelled: occasion completed"
    assert {row.status for row in rows} == {"sent", "cancelled"}
    assert all(timedelta(0) <= row.sent_at - row.send_after < timedelta(hours=1) for row in sent)
    assert trial.fake.message_count == len(sent) == 4
    assert {sms.sid for sms in trial.fake.messages} == {row.provider_message_id for row in sent}
