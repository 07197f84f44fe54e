"""A participant's time zone change: `change_time_zone` moves the future to the new local time
and leaves everything answered, sent, past or open now as it was. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from study.models import Participant
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from study.schedule.materialise import TimeZoneError, change_time_zone
from tests.study.schedule.test_materialise import (
    EXAMPLE,
    SECRET,
    actions,
    enroll_directly,
    extend_horizon,
    messages,
    occasions,
    plan_now,
)

ACTOR = "researcher:coordinator@example.org"


@pytest.fixture
def registered(session):
    """The example protocol, registered: the study's version in force."""
    registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
    session.commit()
    return registration


def move(session, participant, zone, clock):
    change = change_time_zone(
        session, participant, zone, now=clock.now(), actor=ACTOR, secret_key=SECRET
    )
    session.commit()
    return change


def live(session, participant):
    return [o for o in occasions(session, participant) if o.status != "cancelled"]


def local(instant, zone):
    return instant.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M %Z")


def test_only_future_occasions_move_to_the_same_local_time_in_the_new_zone(
    session, registered, clock
):
    participant = enroll_directly(session, registered, clock)  # Europe/London, Mon 2 March
    plan_now(session, registered, participant, clock)
    baseline = occasions(session, participant)[0]
    baseline.status, baseline.completed_at = "completed", clock.now()
    session.add(baseline)
    session.commit()
    # Tuesday 10 March, 09:00 UTC: wave 1 (Monday 19:00 London, a 48h window) is open now.
    clock.advance(days=8)
    extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()
    before = {(o.schedule_key, o.wave): o for o in live(session, participant)}
    assert list(before) == [("baseline", 0), ("weekly", 1), ("weekly", 2), ("weekly", 3)]
    open_now = before[("weekly", 1)]
    assert open_now.due_at < clock.now() < open_now.closes_at
    open_now_messages = {(m.id, m.send_after, m.status) for m in messages(session, open_now)}

    change = move(session, participant, "America/New_York", clock)

    assert (change.before, change.after, change.changed) == (
        "Europe/London",
        "America/New_York",
        True,
    )
    assert (change.replanned.cancelled_occasions, len(change.replanned.occasions)) == (2, 2)
    session.expire_all()
    assert session.get(Participant, participant.id).timezone == "America/New_York"
    after = live(session, participant)
    assert [(o.schedule_key, o.wave) for o in after] == list(before)
    # The answered baseline and the wave open now keep their rows, instants and messages.
    assert after[0].id == baseline.id and after[0].status == "completed"
    assert after[1].id == open_now.id and after[1].due_at == open_now.due_at
    assert {(m.id, m.send_after, m.status) for m in messages(session, after[1])} == (
        open_now_messages
    )
    # Waves 2 and 3 are new rows at 19:00 New York time (EDT since 8 March: 23:00 UTC).
    assert [local(o.due_at, "America/New_York") for o in after[2:]] == [
        "Mon 16 Mar 19:00 EDT",
        "Mon 23 Mar 19:00 EDT",
    ]
    assert [o.due_at for o in after[2:]] == [
        datetime(2026, 3, 16, 23, 0, tzinfo=UTC),
        datetime(2026, 3, 23, 23, 0, tzinfo=UTC),
    ]
    for key in (("weekly", 2), ("weekly", 3)):
        session.refresh(before[key])
        assert before[key].status == "cancelled"
        assert {m.status for m in messages(session, before[key])} == {"cancelled"}
    assert {m.status for m in messages(session, after[2])} == {"pending"}
    (moved,) = actions(session, "participant.timezone")
    assert (moved.actor, moved.entity_id) == (ACTOR, str(participant.id))
    (replanned,) = actions(session, "schedule.replan")
    assert (replanned.actor, replanned.details["reason"]) == (ACTOR, "timezone")


def test_a_move_across_a_daylight_saving_change_keeps_the_local_time(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)
    # Saturday 28 March: the next two waves straddle Sydney's return to standard time (5 April).
    clock.advance(days=26, hours=3)
    extend_horizon(session, clock.now(), secret_key=SECRET)
    session.commit()

    move(session, participant, "Australia/Sydney", clock)

    future = [o for o in live(session, participant) if o.due_at > clock.now()]
    assert [(o.schedule_key, o.wave) for o in future] == [("weekly", 4), ("weekly", 5)]
    assert [local(o.due_at, "Australia/Sydney") for o in future] == [
        "Mon 30 Mar 19:00 AEDT",
        "Mon 06 Apr 19:00 AEST",
    ]
    # One hour apart in UTC: +11:00 before the change, +10:00 after it.
    assert [o.due_at for o in future] == [
        datetime(2026, 3, 30, 8, 0, tzinfo=UTC),
        datetime(2026, 4, 6, 9, 0, tzinfo=UTC),
    ]
    assert [o.closes_at - o.due_at for o in future] == [future[0].closes_at - future[0].due_at] * 2


def test_the_same_zone_again_changes_and_audits_nothing(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)
    ids = [o.id for o in occasions(session, participant)]

    change = move(session, participant, "Europe/London", clock)

    assert not change.changed and change.replanned is None
    assert [o.id for o in live(session, participant)] == ids
    assert actions(session, "participant.timezone") == []
    assert actions(session, "schedule.replan") == []


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "europe/london", "UTC; DROP", "+01:00"])
def test_an_unknown_zone_is_refused_and_nothing_changes(session, registered, clock, zone):
    participant = enroll_directly(session, registered, clock)
    plan_now(session, registered, participant, clock)
    ids = [o.id for o in occasions(session, participant)]

    with pytest.raises(TimeZoneError, match="not a time zone known here"):
        change_time_zone(
            session, participant, zone, now=clock.now(), actor=ACTOR, secret_key=SECRET
        )
    session.rollback()

    session.expire_all()
    assert session.get(Participant, participant.id).timezone == "Europe/London"
    assert [o.id for o in live(session, participant)] == ids
    assert actions(session, "participant.timezone") == []


def test_before_enrollment_only_the_zone_changes(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    participant.status, participant.enrolled_at = "consented", None
    session.add(participant)
    session.commit()

    change = move(session, participant, "Asia/Kolkata", clock)

    assert change.changed and change.replanned is None
    assert session.get(Participant, participant.id).timezone == "Asia/Kolkata"
    assert occasions(session, participant) == []
    assert len(actions(session, "participant.timezone")) == 1


def test_a_withdrawn_participant_has_no_schedule_to_move(session, registered, clock):
    participant = enroll_directly(session, registered, clock)
    participant.status = "withdrawn"
    session.add(participant)
    session.commit()

    with pytest.raises(TimeZoneError, match="is withdrawn"):
        change_time_zone(
            session, participant, "Asia/Kolkata", now=clock.now(), actor=ACTOR, secret_key=SECRET
        )
    session.rollback()
    session.expire_all()
    assert session.get(Participant, participant.id).timezone == "Europe/London"
