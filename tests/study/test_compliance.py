"""Compliance: a record per occasion with its latencies, summaries by arm and wave, and the
sweep that settles closed windows as missed. On SQLite and PostgreSQL.

The timelines are built by hand on a FakeClock (occasions, outbox rows and responses written
directly), so every latency below is known exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from study.compliance import (
    SWEEP_TASK_NAME,
    compliance_records,
    compliance_summary,
    sweep_missed,
    sweep_task,
)
from study.models import (
    Allocation,
    Arm,
    AuditEvent,
    Occasion,
    OutboundMessage,
    Participant,
    Response,
)
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from study.scheduler import standard_tasks, tick_once

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
HOUR = 3600.0


@dataclass
class Timeline:
    """The example study, with participants allocated to arms and occasions built by hand."""

    engine: object
    clock: object
    study_id: int
    version_id: int
    arms: dict[str, int]
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def participant(self, arm: str = "instruct") -> Participant:
        with Session(self.engine, expire_on_commit=False) as session:
            participant = Participant(
                study_id=self.study_id,
                code=f"P-COMP{next(self.numbers):04d}",
                status="enrolled",
                protocol_version_id=self.version_id,
                enrolled_at=self.clock.now(),
            )
            session.add(participant)
            session.flush()
            session.add(
                Allocation(
                    participant_id=participant.id,
                    arm_id=self.arms[arm],
                    scheme="test",
                    sequence_number=participant.id,
                )
            )
            session.commit()
            return participant

    def occasion(self, participant, *, wave=1, key="weekly", window=timedelta(hours=48),
                 status="scheduled") -> Occasion:  # fmt: skip
        with Session(self.engine, expire_on_commit=False) as session:
            occasion = Occasion(
                participant_id=participant.id,
                protocol_version_id=self.version_id,
                schedule_key=key,
                wave=wave,
                kind="wave",
                instruments=["who5"],
                due_at=self.clock.now(),
                closes_at=self.clock.now() + window,
                status=status,
            )
            session.add(occasion)
            session.commit()
            return occasion

    def message(self, occasion, *, channel="sms", purpose="invitation", status="pending",
                sent=False) -> OutboundMessage:  # fmt: skip
        with Session(self.engine, expire_on_commit=False) as session:
            message = OutboundMessage(
                participant_id=occasion.participant_id,
                occasion_id=occasion.id,
                channel=channel,
                purpose=purpose,
                status=status,
                send_after=self.clock.now(),
                expires_at=occasion.closes_at,
                sent_at=self.clock.now() if sent else None,
            )
            session.add(message)
            session.commit()
            return message

    def update(self, model, key, **values):
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(model, key)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
            session.commit()
            return row

    def send(self, occasion, **kwargs) -> OutboundMessage:
        """The dispatcher's record of a send: the message sent, the occasion `sent`."""
        message = self.message(occasion, status="sent", sent=True, **kwargs)
        if self.get(Occasion, occasion.id).status == "scheduled":
            self.update(Occasion, occasion.id, status="sent")
        return message

    def open(self, occasion):
        self.update(Occasion, occasion.id, status="opened", opened_at=self.clock.now())

    def answer_part(self, occasion):
        with Session(self.engine) as session:
            session.add(
                Response(
                    occasion_id=occasion.id,
                    participant_id=occasion.participant_id,
                    instrument_id="who5",
                    instrument_version="1",
                    channel="web",
                    status="partial",
                    started_at=self.clock.now(),
                )
            )
            session.commit()
        self.update(Occasion, occasion.id, status="partial")

    def complete(self, occasion):
        self.update(Occasion, occasion.id, status="completed", completed_at=self.clock.now())

    def get(self, model, key):
        with Session(self.engine) as session:
            return session.get(model, key)

    def records(self):
        with Session(self.engine) as session:
            return compliance_records(session, self.study_id, now=self.clock.now())

    def record(self, occasion):
        [record] = [r for r in self.records() if r.occasion_id == occasion.id]
        return record

    def summary(self):
        with Session(self.engine) as session:
            return compliance_summary(session, self.study_id, now=self.clock.now())

    def sweep(self, **kwargs):
        with Session(self.engine) as session:
            outcome = sweep_missed(session, self.clock.now(), **kwargs)
            session.commit()
            return outcome


@pytest.fixture
def timeline(engine, clock) -> Timeline:
    with Session(engine, expire_on_commit=False) as session:
        registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
        session.commit()
        arms = {
            arm.key: arm.id
            for arm in session.exec(select(Arm).where(Arm.study_id == registration.study.id))
        }
    return Timeline(engine, clock, registration.study.id, registration.version.id, arms)


# --- records and latencies ------------------------------------------------------------------------


def test_a_completed_occasion_records_every_stage_and_its_latencies(timeline):
    participant = timeline.participant("instruct")
    occasion = timeline.occasion(participant)
    due = timeline.clock.now()
    timeline.clock.advance(minutes=2)
    timeline.send(occasion)
    timeline.clock.advance(hours=1)
    timeline.open(occasion)
    timeline.clock.advance(minutes=5)
    timeline.complete(occasion)

    record = timeline.record(occasion)

    assert (record.participant, record.arm, record.schedule_key, record.wave, record.kind) == (
        participant.code,
        "instruct",
        "weekly",
        1,
        "wave",
    )
    assert (record.status, record.reached, record.channels) == ("completed", "completed", ("sms",))
    assert (record.due_at, record.closes_at) == (due, due + timedelta(hours=48))
    assert record.due_to_sent == 120.0
    assert record.sent_to_opened == HOUR
    assert record.opened_to_completed == 300.0
    assert record.due_to_completed == 120.0 + HOUR + 300.0
    assert record.late is False


def test_latencies_are_none_for_stages_not_reached(timeline):
    occasion = timeline.occasion(timeline.participant())
    timeline.message(occasion)  # pending, not sent

    record = timeline.record(occasion)

    assert record.status == "scheduled"
    assert record.reached == "scheduled"
    assert record.sent_at is None
    assert (
        record.due_to_sent,
        record.sent_to_opened,
        record.opened_to_completed,
        record.due_to_completed,
    ) == (None, None, None, None)
    assert record.delivery == {"sms": "pending"}


def test_a_sent_occasion_shows_delivered_once_the_provider_confirms_any_message(timeline):
    occasion = timeline.occasion(timeline.participant())
    sms = timeline.send(occasion, channel="sms")
    timeline.send(occasion, channel="email")
    assert timeline.record(occasion).status == "sent"

    timeline.update(OutboundMessage, sms.id, status="delivered")

    record = timeline.record(occasion)
    assert (record.status, record.reached) == ("delivered", "delivered")
    assert record.channels == ("email", "sms")
    assert record.delivery == {"email": "sent", "sms": "delivered"}


def test_delivery_failures_are_counted_per_channel(timeline):
    occasion = timeline.occasion(timeline.participant())
    timeline.message(occasion, channel="sms", status="undelivered", sent=True)
    timeline.message(occasion, channel="sms", purpose="reminder", status="failed")
    timeline.message(occasion, channel="email", status="delivered", sent=True)

    record = timeline.record(occasion)

    assert record.delivery_failures == {"sms": 2}
    assert record.delivery == {"sms": "undelivered", "email": "delivered"}


def test_the_first_message_sent_starts_the_clock_whatever_its_purpose(timeline):
    occasion = timeline.occasion(timeline.participant())
    timeline.clock.advance(minutes=10)
    timeline.send(occasion, channel="email")
    timeline.clock.advance(minutes=50)
    timeline.send(occasion, channel="sms")

    assert timeline.record(occasion).due_to_sent == 600.0


def test_completion_after_a_reminder_is_late_and_before_it_is_not(timeline):
    participant = timeline.participant()
    prompt, needed_reminding = (
        timeline.occasion(participant),
        timeline.occasion(participant, wave=2),
    )
    timeline.send(prompt)
    timeline.send(needed_reminding)
    timeline.clock.advance(hours=1)
    timeline.complete(prompt)
    timeline.clock.advance(hours=23)
    timeline.send(needed_reminding, purpose="reminder")
    timeline.clock.advance(hours=1)
    timeline.complete(needed_reminding)

    assert timeline.record(prompt).late is False
    assert timeline.record(needed_reminding).late is True
    # Completed without the survey page having been opened (an SMS conversation): no
    # opened-to-completed latency, but due-to-completed all the same.
    assert timeline.record(needed_reminding).opened_to_completed is None
    assert timeline.record(needed_reminding).due_to_completed == 25 * HOUR


def test_records_name_participants_by_code_only_and_cover_only_the_study(timeline):
    occasion = timeline.occasion(timeline.participant("reflective"))

    [record] = timeline.records()

    assert record.occasion_id == occasion.id
    assert record.participant.startswith("P-COMP")
    assert record.arm == "reflective"
    fields = set(vars(record))
    assert not fields & {"phone", "email", "contact", "participant_id", "body", "to"}


def test_a_closed_window_reads_as_missed_even_before_the_sweep_stores_it(timeline):
    occasion = timeline.occasion(timeline.participant(), window=timedelta(hours=2))
    timeline.send(occasion)
    timeline.clock.advance(hours=2)

    assert timeline.record(occasion).status == "missed"
    assert timeline.get(Occasion, occasion.id).status == "sent"


# --- summary --------------------------------------------------------------------------------------


def test_summary_gives_response_rates_by_arm_and_wave(timeline):
    window = timedelta(hours=24)
    instruct = [timeline.participant("instruct") for _ in range(3)]
    reflective = [timeline.participant("reflective") for _ in range(2)]
    occasions = {p.code: timeline.occasion(p, window=window) for p in instruct + reflective}
    for occasion in occasions.values():
        timeline.send(occasion)
    timeline.clock.advance(hours=1)
    timeline.complete(occasions[instruct[0].code])
    timeline.complete(occasions[instruct[1].code])
    timeline.complete(occasions[reflective[0].code])
    timeline.message(occasions[reflective[1].code], status="undelivered", sent=True)
    # Wave 2 for one instruct participant: completed while its window is still open.
    later = timeline.occasion(instruct[0], wave=2, window=timedelta(days=7))
    timeline.complete(later)
    # A cancelled occasion counts nowhere but in `cancelled`.
    timeline.occasion(instruct[2], wave=3, status="cancelled", window=timedelta(hours=1))
    timeline.clock.advance(hours=23)  # wave 1 windows have closed; wave 2 is still open

    summary = timeline.summary()

    groups = {(g.arm, g.schedule_key, g.wave): g for g in summary.groups}
    wave1 = groups[("instruct", "weekly", 1)]
    assert (wave1.occasions, wave1.due, wave1.completed, wave1.missed) == (3, 3, 2, 1)
    assert wave1.response_rate == pytest.approx(2 / 3)
    reflective1 = groups[("reflective", "weekly", 1)]
    assert (
        reflective1.due,
        reflective1.completed,
        reflective1.missed,
        reflective1.response_rate,
    ) == (2, 1, 1, 0.5)
    assert reflective1.delivery_failures == {"sms": 1}
    wave2 = groups[("instruct", "weekly", 2)]
    assert (wave2.due, wave2.completed, wave2.response_rate) == (1, 1, 1.0)
    wave3 = groups[("instruct", "weekly", 3)]
    assert (wave3.cancelled, wave3.due, wave3.response_rate) == (1, 0, None)

    arms = {group.arm: group for group in summary.arms}
    assert (arms["instruct"].due, arms["instruct"].completed) == (4, 3)
    assert (summary.total.occasions, summary.total.due, summary.total.completed) == (7, 6, 4)
    assert summary.total.delivery_failures == {"sms": 1}


def test_an_open_occasion_not_yet_answered_does_not_lower_the_rate(timeline):
    participant = timeline.participant()
    timeline.complete(timeline.occasion(participant, wave=1, window=timedelta(hours=1)))
    timeline.send(timeline.occasion(participant, wave=2, window=timedelta(days=2)))
    timeline.clock.advance(hours=2)

    total = timeline.summary().total

    assert (total.due, total.completed, total.open, total.response_rate) == (1, 1, 1, 1.0)


def test_summary_counts_late_completions_and_misses_that_were_partial(timeline):
    participant = timeline.participant()
    late = timeline.occasion(participant, wave=1, window=timedelta(hours=6))
    partial = timeline.occasion(participant, wave=2, window=timedelta(hours=6))
    timeline.send(late)
    timeline.send(partial)
    timeline.clock.advance(hours=2)
    timeline.send(late, purpose="reminder")
    timeline.open(partial)
    timeline.answer_part(partial)
    timeline.clock.advance(minutes=1)
    timeline.complete(late)
    timeline.clock.advance(hours=4)
    timeline.sweep()

    arm = timeline.summary().arms[0]

    assert (arm.late, arm.missed, arm.missed_partial, arm.completed) == (1, 1, 1, 1)


# --- the missed sweep -----------------------------------------------------------------------------


def test_the_sweep_marks_closed_unanswered_occasions_missed_and_expires_their_messages(timeline):
    participant = timeline.participant()
    never_sent = timeline.occasion(participant, wave=1, window=timedelta(hours=1))
    sent = timeline.occasion(participant, wave=2, window=timedelta(hours=1))
    still_open = timeline.occasion(participant, wave=3, window=timedelta(hours=3))
    unsent_invitation = timeline.message(never_sent)
    timeline.send(sent)
    pending_reminder = timeline.message(sent, purpose="reminder")
    open_reminder = timeline.message(still_open, purpose="reminder")
    timeline.clock.advance(hours=1)

    outcome = timeline.sweep()

    assert (outcome.missed, outcome.partial, outcome.expired_messages) == (2, 0, 2)
    assert timeline.get(Occasion, never_sent.id).status == "missed"
    assert timeline.get(Occasion, sent.id).status == "missed"
    assert timeline.get(Occasion, still_open.id).status == "scheduled"
    for message in (unsent_invitation, pending_reminder):
        row = timeline.get(OutboundMessage, message.id)
        assert (row.status, row.last_error) == ("expired", "expired: window closed")
        assert row.status_updated_at == timeline.clock.now()
    assert timeline.get(OutboundMessage, open_reminder.id).status == "pending"
    assert timeline.record(sent).reached == "sent"


def test_the_sweep_is_idempotent_and_audits_each_occasion_once(timeline):
    occasion = timeline.occasion(timeline.participant(), window=timedelta(hours=1))
    timeline.send(occasion)
    timeline.clock.advance(hours=2)

    first = timeline.sweep()
    second = timeline.sweep()

    assert (first.missed, second.missed, second.expired_messages) == (1, 0, 0)
    with Session(timeline.engine) as session:
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "schedule.missed")
        ).all()
    assert event.actor == "system:scheduler"
    assert event.details["occasions"] == 1


def test_a_partial_occasion_becomes_missed_and_keeps_what_shows_it_was_partial(timeline):
    occasion = timeline.occasion(timeline.participant(), window=timedelta(hours=4))
    timeline.send(occasion)
    timeline.clock.advance(hours=1)
    timeline.open(occasion)
    opened_at = timeline.clock.now()
    timeline.answer_part(occasion)
    timeline.clock.advance(hours=3)

    outcome = timeline.sweep()

    assert (outcome.missed, outcome.partial) == (1, 1)
    row = timeline.get(Occasion, occasion.id)
    assert (row.status, row.opened_at, row.completed_at) == ("missed", opened_at, None)
    record = timeline.record(occasion)
    assert (record.status, record.reached, record.sent_to_opened) == ("missed", "partial", HOUR)
    with Session(timeline.engine) as session:
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "schedule.missed")
        ).all()
        assert event.details["partial_occasion_ids"] == [occasion.id]
        # The partial answers stay: erasing them is consent's business, not the sweep's.
        assert session.exec(select(Response).where(Response.occasion_id == occasion.id)).all()


def test_an_opened_occasion_that_closes_unanswered_is_missed_having_reached_opened(timeline):
    occasion = timeline.occasion(timeline.participant(), window=timedelta(hours=4))
    timeline.send(occasion)
    timeline.open(occasion)
    timeline.clock.advance(hours=4)

    assert timeline.sweep().partial == 0
    assert timeline.record(occasion).reached == "opened"


def test_the_sweep_leaves_completed_cancelled_and_sending_alone(timeline):
    participant = timeline.participant()
    completed = timeline.occasion(participant, wave=1, window=timedelta(hours=1))
    timeline.complete(completed)
    cancelled = timeline.occasion(
        participant, wave=2, window=timedelta(hours=1), status="cancelled"
    )
    in_flight = timeline.occasion(participant, wave=3, window=timedelta(hours=1))
    sending = timeline.message(in_flight, status="sending")
    timeline.clock.advance(hours=2)

    outcome = timeline.sweep()

    assert outcome.missed == 1
    assert timeline.get(Occasion, completed.id).status == "completed"
    assert timeline.get(Occasion, cancelled.id).status == "cancelled"
    assert timeline.get(Occasion, in_flight.id).status == "missed"
    # A dispatcher holds it: its lease and re-check settle it (the occasion is missed: expired).
    assert timeline.get(OutboundMessage, sending.id).status == "sending"


def test_the_sweep_works_in_batches(timeline):
    participant = timeline.participant()
    for wave in range(1, 6):
        timeline.occasion(participant, wave=wave, window=timedelta(hours=1))
    timeline.clock.advance(hours=1)

    outcomes = [timeline.sweep(batch_size=2) for _ in range(4)]

    assert [(o.missed, o.more) for o in outcomes] == [(2, True), (2, True), (1, False), (0, False)]


def test_the_sweep_runs_with_every_scheduler_tick_after_dispatch(engine, settings, timeline):
    occasion = timeline.occasion(timeline.participant(), window=timedelta(hours=1))
    timeline.clock.advance(hours=1)
    tasks = standard_tasks(settings)
    names = [task.name for task in tasks]
    assert SWEEP_TASK_NAME in names
    assert names.index(SWEEP_TASK_NAME) > names.index("dispatch")

    outcome = tick_once(engine, timeline.clock, tasks)

    assert outcome.failed == ()
    assert timeline.get(Occasion, occasion.id).status == "missed"


def test_the_sweep_task_clears_a_backlog_in_batches_within_one_tick(engine, settings, timeline):
    participant = timeline.participant()
    for wave in range(1, 8):
        timeline.occasion(participant, wave=wave, window=timedelta(hours=1))
    timeline.clock.advance(hours=1)

    sweep_task(settings, batch_size=3, max_batches=2).run(engine, timeline.clock.now())

    with Session(engine) as session:
        statuses = session.exec(select(Occasion.status).order_by(col(Occasion.id))).all()
    assert statuses.count("missed") == 6
    sweep_task(settings, batch_size=3).run(engine, timeline.clock.now())
    with Session(engine) as session:
        assert set(session.exec(select(Occasion.status))) == {"missed"}
