"""PostgreSQL drops every connection under load (as a restart or a fail-over does) and the
web server and the dispatcher carry on by themselves: no restart, no manual step.

The fault is `pg_terminate_backend` on every backend of the test's database, which is what a
server restart does to its clients, without restarting a cluster other tests share (the CI role
is granted `pg_signal_backend` for this). Requests and dispatch rounds caught in the act may
fail; every answer that was acknowledged is kept, later requests succeed on the first try (the
pool tests a connection before handing it out: `pool_pre_ping`), and the dispatcher keeps
sending from its next round.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from study.db import make_engine
from study.models import OutboundMessage
from tests.conftest import POSTGRES_URL
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.study.schedule.test_dispatch import TWILIO_FROM
from tests.support.dispatcher import spawn
from tests.support.participants import (
    WHO5_ITEMS,
    make_real_time_trial,
    midday_zone,
    occasion_id_of,
    open_survey_paths,
    stored_submissions,
    submit_web_survey,
)
from tests.support.processes import Gunicorn, kill_group, server_env
from tests.support.twilio_server import TwilioServer

pytestmark = pytest.mark.postgres

SURVEYS = 30
INVITATIONS = 20
FAULT_AFTER = 8  # acknowledged answers before the fault
TWILIO_SECONDS = 0.4  # how long the fake Twilio takes to accept a message


def drop_every_connection(database: str) -> int:
    """Terminate every backend connected to `database`; how many there were."""
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :database AND pid <> pg_backend_pid()"
                ),
                {"database": database},
            ).scalar_one()
    finally:
        admin.dispose()


def sent_rows(engine) -> int:
    with Session(engine) as session:
        return Counter(session.exec(select(OutboundMessage.status)).all())["sent"]


def wait_until(condition, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds or `timeout` passes (the assertions after say which)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_web_and_dispatcher_recover_by_themselves_when_the_database_drops_connections(
    postgres_template, settings, tmp_path
):
    database_url = postgres_template.fresh_url()
    engine = make_engine(database_url)
    trial = make_real_time_trial(engine, settings, public_url="http://flourish.test")
    paths = open_survey_paths(trial, SURVEYS)
    zone = midday_zone()
    participants = [trial.enrol(timezone=zone) for _ in range(INVITATIONS)]
    for participant in participants:
        trial.invitation(participant)
    fake = trial.fake
    env = server_env(
        trial.settings,
        database_url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM=TWILIO_FROM,
        FLOURISH_SMS_PER_SECOND="0",
        FLOURISH_SEND_RETRY_SECONDS="1",
    )
    # A slow Twilio keeps dispatch going while the web load and the fault happen.
    fake.on_create = lambda message: time.sleep(TWILIO_SECONDS)
    acknowledged: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()

    def participant_answers(path: str) -> None:
        try:
            status = submit_web_survey(web.url, path, timeout=10).status_code
        except httpx.HTTPError:
            status = None
        with lock:
            (acknowledged if status == 303 else failed).append(path)

    log = tmp_path / "dispatcher.log"
    with TwilioServer(fake) as twilio, Gunicorn.start(env, workers=2) as web:
        env["FLOURISH_TEST_TWILIO_URL"] = twilio.url
        dispatcher = spawn(env, "--batch", "5", log=log)
        try:
            wait_until(lambda: fake.message_count > 0)
            with ThreadPoolExecutor(4) as pool:
                for path in paths:
                    pool.submit(participant_answers, path)
                wait_until(lambda: len(acknowledged) >= FAULT_AFTER)
                dropped = drop_every_connection(make_url(database_url).database)
                sent_at_fault = fake.message_count
            assert dropped > 0
            assert sent_at_fault < INVITATIONS, "dispatch had finished before the fault"

            # The web server answers again without a restart; answers cut off go in on retry.
            health = httpx.get(web.url + "/healthz").json()
            assert health["database"]["status"] == "ok"
            assert [submit_web_survey(web.url, path).status_code for path in failed] == [
                303
            ] * len(failed)

            # The same dispatcher process goes on sending after the fault.
            wait_until(lambda: sent_rows(engine) == INVITATIONS)
            assert fake.message_count > sent_at_fault, log.read_text()
        finally:
            kill_group(dispatcher)

        # A round cut off between Twilio's answer and our record leaves its row to the next
        # dispatcher after the lease: a later one (its clock past the lease) finishes the job.
        finisher = spawn(env, "--until-idle", "--clock-offset-seconds", "180", log=log)
        assert finisher.wait(timeout=60) == 0, log.read_text()

    every = [occasion_id_of(trial.settings, path) for path in paths]
    assert stored_submissions(engine, every) == {occasion_id: WHO5_ITEMS for occasion_id in every}
    assert sent_rows(engine) == INVITATIONS
    assert Counter(message.to for message in fake.messages) == Counter(
        trial.phone(participant) for participant in participants
    )
    engine.dispose()
