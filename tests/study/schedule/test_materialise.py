"""Writing schedules: occasions and pending messages at enrollment, the rolling horizon,
re-planning after a move or an amendment. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from study import enrollment
from study.models import (
    AuditEvent,
    Consent,
    Occasion,
    OutboundMessage,
    Participant,
)
from study.protocol import load_protocol, parse_protocol
from study.protocol.registry import register_protocol
from study.schedule import (
    DEFAULT_HORIZON,
    ScheduleError,
    extend_horizon,
    horizon_task,
    materialise,
    plan_occasions,
    replan,
    schedule_seed,
)
from study.scheduler import standard_tasks, tick_once
from tests.study.test_enrollment import ENVIRON, opened, ready_to_enroll, vault  # noqa: F401

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"
SECRET = "a-secret-key-for-schedule-tests-" + "x" * 16
SLUG = "assistant-flourishing-rct"
SEED = schedule_seed(SECRET, SLUG)


def amended(**replacements: str):
    """The example protocol with text replaced, parsed next to the original file."""
    text = EXAMPLE.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_protocol(text, str(EXAMPLE), base_dir=EXAMPLE.parent)


@pytest.fixture
def registered(session):
    registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
    session.commit()
    return registration


def enroll_directly(session, registration, clock, *, code="P-SCHED001", tz="Europe/London",
                    channel="sms") -> Participant:  # fmt: skip
    participant = Participant(
        study_id=registration.study.id,
        code=code,
        status="enrolled",
        protocol_version_id=registration.version.id,
        timezone=tz,
        preferred_channel=channel,
        enrolled_at=clock.now(),
        created_at=clock.now(),
    )
    session.add(participant)
    session.commit()
    return participant


def plan_now(session, registration, participant, clock, protocol=None, **options):
    written = materialise(
        session,
        participant,
        protocol or load_protocol(EXAMPLE),
        registration.version.id,
        now=clock.now(),
        seed=SEED,
        **options,
    )
    session.commit()
    return written


def occasions(session, participant=None, *statuses):
    statement = select(Occasion).order_by(col(Occasion.due_at), col(Occasion.id))
    if participant is not None:
        statement = statement.where(Occasion.participant_id == participant.id)
    if statuses:
        statement = statement.where(col(Occasion.status).in_(statuses))
    return session.exec(statement).all()


def messages(session, occasion=None):
    statement = select(OutboundMessage).order_by(
        col(OutboundMessage.send_after), col(OutboundMessage.id)
    )
    if occasion is not None:
        statement = statement.where(OutboundMessage.occasion_id == occasion.id)
    return session.exec(statement).all()


def actions(session, action):
    return session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def assert_no_duplicates(session):
    live = [(o.participant_id, o.schedule_key, o.wave) for o in occasions(session)]
    live = [key for key, o in zip(live, occasions(session), strict=True) if o.status != "cancelled"]
    assert [key for key, n in Counter(live).items() if n > 1] == []


# --- at enrollment ------------------------------------------------------------------------------


def test_materialise_writes_the_next_two_weeks_with_pending_invitations_and_reminders(
    session, registered, clock
):
    participant = enroll_directly(session, registered, clock)

    written = plan_now(session, registered, participant, clock)

    # Enrolled Monday 2 March 09:00 (London, GMT): the baseline now, wave 1 on 9 March at 19:00;
    # wave 2 (16 March 19:00) is beyond the 14-day horizon, and EMA needs an opt-in.
    assert [(o.schedule_key, o.wave) for o in written] == [("baseline", 0), ("weekly", 1)]
    baseline, wave = occasions(session, participant)
    assert baseline.status == wave.status == "scheduled"
    assert baseline.protocol_version_id == registered.version.id
    assert baseline.due_at == clock.now()
    assert baseline.closes_at == clock.now() + timedelta(days=7)
    assert baseline.instruments[0] == "who5" and len(baseline.instruments) == 8
    assert wave.due_at.isoformat() == "2026-03-09T19:00:00+00:00"

    sent = messages(session)
    assert [
        (m.purpose, m.channel, m.send_after - clock.now()) for m in messages(session, baseline)
    ] == [
        ("invitation", "sms", timedelta(0)),
        ("reminder", "sms", timedelta(hours=24)),
        ("reminder", "sms", timedelta(hours=72)),
    ]
    assert [m.purpose for m in messages(session, wave)] == ["invitation", "reminder"]
    assert {(m.status, m.body, m.participant_id) for m in sent} == {("pending", "", participant.id)}
    assert all(m.expires_at == session.get(Occasion, m.occasion_id).closes_at for m in sent)
    (event,) = actions(session, "schedule.plan")
    assert event.details["occasions"] == 2 and event.details["messages"] == 5


@pytest.mark.parametrize("channel,per_occasion", [("both", 2), ("email", 1), ("web", 0)])
def test_one_invitation_per_channel_the_participant_chose(
    session, registered, clock, channel, per_occasion
):
    participant = enroll_directly(session, registered, clock, channel=channel)
    plan_now(session, registered, participant, clock)

    baseline = occasions(session, participant)[0]
    invitations = [m for m in messages(session, baseline) if m.purpose == "invitation"]
    assert len(invitations) == per_occasion
    assert len(messages(session)) == 5 * per_occasion


def test_materialising_again_writes_nothing_and_audits_nothing(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)

    assert plan_now(session, registered, participant, clock) == []
    clock.advance(hours=1)
    assert plan_now(session, registered, participant, clock) == []

    assert len(occasions(session)) == 2 and len(messages(session)) == 5
    assert len(actions(session, "schedule.plan")) == 1


def test_ema_is_written_for_those_whose_consent_opts_in(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    session.add(
        Consent(
            participant_id=participant.id,
            document_version="1",
            document_hash="0" * 64,
            options={"ema": True},
            signature_encrypted=b"-",
            signed_at=clock.now(),
        )
    )
    session.commit()

    plan_now(session, registered, participant, clock)

    prompts = [o for o in occasions(session, participant) if o.kind == "ema"]
    assert len(prompts) == 21  # 7 days x 3 from tomorrow, all within two weeks
    assert all(len(messages(session, p)) == 1 for p in prompts)  # an invitation, no reminder


def test_nobody_but_enrolled_participants_is_planned(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    participant.status = "withdrawn"
    session.add(participant)
    session.commit()

    with pytest.raises(ScheduleError, match="withdrawn"):
        plan_now(session, registered, participant, clock)
    session.rollback()
    assert extend_horizon(session, clock.now(), secret_key=SECRET).extended == 0
    assert occasions(session) == []


def test_enrollment_plans_the_schedule_in_its_transaction_exactly_once(
    session,
    vault,  # noqa: F811
    opened,  # noqa: F811
    clock,
):
    journey = ready_to_enroll(session, vault, opened, clock)

    first = enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON, secret_key=SECRET)
    session.commit()
    again = enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON, secret_key=SECRET)
    session.commit()

    assert again.id == first.id
    planned = occasions(session, journey.participant)
    assert [(o.schedule_key, o.wave) for o in planned] == [("baseline", 0), ("weekly", 1)]
    assert len(messages(session)) == 5  # the participant chose sms
    (event,) = actions(session, "schedule.plan")
    assert event.actor == journey.actor
    # The same seed as the scheduler's later top-ups, so the plan continues where it left off.
    expected = plan_occasions(
        journey.protocol,
        enrolled_at=clock.now(),
        timezone="Europe/London",
        seed=f"{SEED}:{journey.participant.code}",
        horizon=DEFAULT_HORIZON,
    )
    assert [o.due_at for o in planned] == [o.due_at for o in expected]


# --- the rolling horizon ------------------------------------------------------------------------


def test_extend_horizon_tops_up_as_time_passes_and_never_twice(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)

    clock.advance(hours=6)  # written up to wave 1, 7 days ahead: half the horizon or more
    assert extend_horizon(session, clock.now(), secret_key=SECRET).extended == 0
    clock.advance(days=2)  # wave 1 is now 5 days ahead: top up to 14 days, i.e. wave 2
    outcome = extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()
    assert (outcome.extended, outcome.occasions, outcome.messages) == (1, 1, 2)
    clock.advance(days=5)  # wave 2 is 7 days and 4 hours ahead: nothing to do yet
    assert extend_horizon(session, clock.now(), secret_key=SECRET).extended == 0
    clock.advance(days=1)
    extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()

    assert [(o.schedule_key, o.wave) for o in occasions(session)] == [
        ("baseline", 0),
        ("weekly", 1),
        ("weekly", 2),
        ("weekly", 3),
    ]
    again = extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()
    assert again.occasions == 0
    assert len(occasions(session)) == 4
    events = actions(session, "schedule.extend")
    assert [e.details["occasions"] for e in events] == [1, 1]
    assert {e.actor for e in events} == {"system:scheduler"}


def test_extend_horizon_works_through_participants_in_batches_and_wraps(session, registered, clock):
    people = [enroll_directly(session, registered, clock, code=f"P-BATCH00{n}") for n in range(3)]

    seen, after = [], 0
    for _ in range(4):
        outcome = extend_horizon(
            session, clock.now(), secret_key=SECRET, batch_size=2, after_id=after
        )
        seen.append((outcome.checked, outcome.extended))
        after = outcome.next_after_id
    session.commit()

    assert seen == [(2, 2), (1, 1), (2, 0), (1, 0)]
    assert {o.participant_id for o in occasions(session)} == {p.id for p in people}


def test_two_schedulers_extending_at_once_never_write_an_occasion_twice(engine, clock):
    with Session(engine, expire_on_commit=False) as session:
        registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
        session.commit()
        for n in range(4):
            enroll_directly(session, registration, clock, code=f"P-RACE000{n}")

    start = threading.Barrier(2)
    outcomes, errors = [], []

    def scheduler():
        try:
            with Session(engine, expire_on_commit=False) as session:
                start.wait()
                outcomes.append(extend_horizon(session, clock.now(), secret_key=SECRET))
                session.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with Session(engine) as session:
        assert len(occasions(session)) == 4 * 2
        assert len(messages(session)) == 4 * 5
        assert_no_duplicates(session)
    assert sorted(o.occasions for o in outcomes) == [0, 8]


def test_daily_prompts_for_six_months_stay_within_the_horizon(session, clock):
    protocol = amended(**{"opt_in: true": "opt_in: false", "days: 7\n": "days: 180\n"})
    registration = register_protocol(session, protocol, actor="test")
    session.commit()
    people = [enroll_directly(session, registration, clock, code=f"P-LONG000{n}") for n in range(3)]
    enrolled_at = clock.now()
    for person in people:
        plan_now(session, registration, person, clock, protocol)
    full = plan_occasions(
        protocol, enrolled_at=enrolled_at, timezone="Europe/London", seed=f"{SEED}:P-LONG0000"
    )
    assert len(full) == 1 + 12 + 3 + 180 * 3

    def future(now):
        return session.exec(
            select(func.count())
            .select_from(Occasion)
            .where(Occasion.participant_id == people[0].id, Occasion.due_at > now)
        ).one()

    for _ in range(100):
        now = clock.advance(days=2)
        extend_horizon(session, now, secret_key=SECRET)
        session.commit()
        # Never more than the horizon's worth ahead, never less than what the next 5 days need.
        assert future(now) <= len([o for o in full if now < o.due_at <= now + DEFAULT_HORIZON])
        assert future(now) >= len([o for o in full if now < o.due_at <= now + timedelta(days=5)])

    written = occasions(session, people[0])
    assert [(o.schedule_key, o.wave, o.due_at) for o in written] == [
        (o.schedule_key, o.wave, o.due_at) for o in full
    ]
    assert len(occasions(session)) == 3 * len(full)
    assert_no_duplicates(session)


# --- re-planning --------------------------------------------------------------------------------


def test_a_move_to_another_zone_replans_only_future_unsent_occasions(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)
    clock.advance(days=8)  # Tuesday 10 March, 09:00: wave 1 went out last night
    wave_1 = occasions(session, participant)[1]
    wave_1.status = "sent"
    invitation = messages(session, wave_1)[0]
    invitation.status, invitation.sent_at = "sent", wave_1.due_at
    session.add_all([wave_1, invitation])
    extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()
    before = {(o.schedule_key, o.wave): o for o in occasions(session, participant)}
    assert list(before) == [("baseline", 0), ("weekly", 1), ("weekly", 2), ("weekly", 3)]

    participant.timezone = "America/New_York"
    session.add(participant)
    result = replan(
        session, participant, load_protocol(EXAMPLE), registered.version.id,
        now=clock.now(), seed=SEED, reason="timezone",
    )  # fmt: skip
    session.commit()

    assert (result.cancelled_occasions, result.cancelled_messages) == (2, 4)
    # The baseline (past) and wave 1 (sent) are untouched; wave 1 is not planned again although
    # 19:00 in New York on 9 March is later than it was in London.
    live = occasions(session, participant, "scheduled", "sent")
    assert [(o.schedule_key, o.wave, o.status) for o in live] == [
        ("baseline", 0, "scheduled"),
        ("weekly", 1, "sent"),
        ("weekly", 2, "scheduled"),
        ("weekly", 3, "scheduled"),
    ]
    assert live[0].id == before[("baseline", 0)].id and live[1].id == before[("weekly", 1)].id
    assert [o.due_at.isoformat() for o in live[2:]] == [
        "2026-03-16T23:00:00+00:00",  # 19:00 EDT
        "2026-03-23T23:00:00+00:00",
    ]
    old = [before[("weekly", 2)], before[("weekly", 3)]]
    for occasion in old:
        session.refresh(occasion)
        assert occasion.status == "cancelled"
        assert {m.status for m in messages(session, occasion)} == {"cancelled"}
    assert {m.status for m in messages(session, live[0])} == {"pending"}
    (event,) = actions(session, "schedule.replan")
    assert event.details["reason"] == "timezone"
    assert (event.details["cancelled_occasions"], event.details["occasions"]) == (2, 2)
    assert_no_duplicates(session)


def test_a_protocol_amendment_is_applied_to_the_future_by_the_horizon_task(
    session, registered, clock
):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)
    clock.advance(days=1)
    at_six = amended(
        **{'local_time: "19:00"\n    window: 48h': 'local_time: "18:00"\n    window: 48h'}
    )
    amendment = register_protocol(session, at_six, actor="test")
    session.commit()

    outcome = extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()

    assert outcome.replanned == 1
    baseline, *waves = occasions(session, participant, "scheduled")
    assert baseline.protocol_version_id == registered.version.id  # past: kept as planned
    assert {w.protocol_version_id for w in waves} == {amendment.version.id}
    assert [w.due_at.isoformat() for w in waves] == [
        "2026-03-09T18:00:00+00:00",
        "2026-03-16T18:00:00+00:00",  # within the horizon from now, 3 March
    ]
    (event,) = actions(session, "schedule.replan")
    assert event.details["reason"] == "amendment"
    # Applied once: the next round finds nothing planned under the old version.
    assert extend_horizon(session, clock.now(), secret_key=SECRET).replanned == 0


# --- the tick task ------------------------------------------------------------------------------


def test_the_horizon_task_runs_with_every_scheduler_and_keeps_its_cursor(engine, settings, clock):
    assert "schedule.extend_horizon" in [task.name for task in standard_tasks(settings)]
    with Session(engine, expire_on_commit=False) as session:
        registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
        session.commit()
        people = [
            enroll_directly(session, registration, clock, code=f"P-TICK000{n}") for n in range(3)
        ]
    task = horizon_task(settings, batch_size=2)

    first = tick_once(engine, clock, [task])
    assert first.failed == () and task.run.after_id == people[1].id
    tick_once(engine, clock, [task])
    assert task.run.after_id == 0

    with Session(engine) as session:
        assert len(occasions(session)) == 3 * 2
        # Seeded with the instance's secret key, as enrollment is.
        expected = plan_occasions(
            load_protocol(EXAMPLE),
            enrolled_at=clock.now(),
            timezone="Europe/London",
            seed=f"{schedule_seed(settings.secret_key, SLUG)}:P-TICK0000",
            horizon=DEFAULT_HORIZON,
        )
        assert [o.due_at for o in occasions(session, people[0])] == [o.due_at for o in expected]
