"""A dispatcher process killed with SIGKILL in the middle of a batch, at the worst instant:
Twilio has accepted a message and the dispatcher dies before it hears the message's id. After a
new dispatcher has run, every invitation has gone out exactly once. Twilio's own record (the
fake's list of created messages) is the proof, not our database.
"""

from __future__ import annotations

import threading
from collections import Counter

from sqlmodel import Session, select

from study.models import OutboundMessage
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.study.schedule.test_dispatch import TWILIO_FROM
from tests.support.dispatcher import rounds, spawn
from tests.support.participants import make_real_time_trial, midday_zone
from tests.support.processes import kill_group, server_env
from tests.support.twilio_server import TwilioServer

INVITATIONS = 30
DIES_AT = 12  # the message Twilio accepts while its sender is killed
BATCH = 10
LEASE_SECONDS = 120  # study.schedule.dispatch.DEFAULT_LEASE


def test_a_dispatcher_killed_mid_dispatch_loses_nothing_and_sends_nothing_twice(
    engine, database_url, settings, tmp_path
):
    trial = make_real_time_trial(engine, settings)
    zone = midday_zone()
    participants = [trial.enrol(timezone=zone) for _ in range(INVITATIONS)]
    invitations = [trial.invitation(participant) for participant in participants]
    fake = trial.fake
    accepted = threading.Event()
    killed = threading.Event()

    def die_while_twilio_answers(message) -> None:
        if fake.message_count == DIES_AT:
            accepted.set()
            killed.wait(timeout=30)

    fake.on_create = die_while_twilio_answers
    log = tmp_path / "dispatcher.log"
    with TwilioServer(fake) as twilio:
        env = server_env(
            trial.settings,
            database_url,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_FROM=TWILIO_FROM,
            FLOURISH_SMS_PER_SECOND="0",
            FLOURISH_TEST_TWILIO_URL=twilio.url,
        )
        first = spawn(env, "--batch", str(BATCH), log=log)
        assert accepted.wait(timeout=25), log.read_text()
        kill_group(first)
        fake.on_create = None
        killed.set()

        with Session(engine) as session:
            states = Counter(session.exec(select(OutboundMessage.status)).all())
        # Killed with messages sent, one in flight, the rest of its batch claimed, others pending.
        assert states["sent"] == DIES_AT - 1
        assert states["sending"] >= 1 and states["pending"] >= 1

        # A new dispatcher, once the dead one's leases have run out, finishes the job.
        second = spawn(
            env, "--until-idle", "--clock-offset-seconds", str(LEASE_SECONDS + 60), log=log
        )
        assert second.wait(timeout=60) == 0, log.read_text()

    sent_to = Counter(message.to for message in fake.messages)
    with Session(engine) as session:
        rows = session.exec(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    assert [row.id for row in rows] == [message.id for message in invitations]
    assert {row.status for row in rows} == {"sent"}
    assert fake.message_count == INVITATIONS
    assert sent_to == Counter(trial.phone(participant) for participant in participants)
    # Each row records the message Twilio really created, the one in flight at the kill included.
    assert sorted(row.provider_message_id for row in rows) == sorted(m.sid for m in fake.messages)
    assert sum(report["recovered"] for report in rounds(log)) == 1
