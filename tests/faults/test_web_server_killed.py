"""The web server killed outright (SIGKILL to gunicorn's master and every worker) while
participants are submitting surveys loses no answer it acknowledged.

"Acknowledged" is what the participant saw: the 303 that leads to the thank-you page, which the
server sends only after the answers are committed. Submissions cut off by the kill may or may
not have been stored (the participant saw an error and will try again), so they are submitted
once more after the restart, which must also work without anyone repairing anything.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.participants import (
    WHO5_ITEMS,
    make_real_time_trial,
    occasion_id_of,
    open_survey_paths,
    stored_submissions,
    submit_web_survey,
)
from tests.support.processes import Gunicorn, server_env

PARTICIPANTS = 40
KILL_AFTER = 12
CONCURRENCY = 8


def test_sigkill_under_concurrent_submissions_loses_no_acknowledged_answer(
    engine, database_url, settings
):
    trial = make_real_time_trial(engine, settings, public_url="http://flourish.test")
    paths = open_survey_paths(trial, PARTICIPANTS)
    acknowledged: list[str] = []
    cut_off: list[str] = []
    lock = threading.Lock()

    def participant(path: str) -> None:
        try:
            response = submit_web_survey(web.url, path, timeout=10)
        except httpx.HTTPError:
            response = None
        with lock:
            (acknowledged if response is not None and response.status_code == 303 else cut_off)\
                .append(path)

    with Gunicorn.start(server_env(trial.settings, database_url), workers=2) as web:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            for path in paths:
                pool.submit(participant, path)
            deadline = time.monotonic() + 20
            while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
                time.sleep(0.005)
            web.kill()
        killed_with_acknowledged = list(acknowledged)

        # The kill came in the middle of the load: some answers got through, some did not.
        assert len(killed_with_acknowledged) >= KILL_AFTER
        assert cut_off, "every submission finished before the kill; the test proved nothing"

        engine.dispose()  # the test's own pooled connections predate the kill
        ids = [occasion_id_of(trial.settings, path) for path in killed_with_acknowledged]
        stored = stored_submissions(engine, ids)
        assert stored == {occasion_id: WHO5_ITEMS for occasion_id in ids}

        # Restarted with no repair step, the server takes the submissions that were cut off.
        web.restart()
        retried = [submit_web_survey(web.url, path).status_code for path in cut_off]
        assert retried == [303] * len(cut_off)
        # ... and an acknowledged participant who comes back sees the thank-you page.
        again = httpx.get(web.url + killed_with_acknowledged[0], follow_redirects=False)
        assert again.status_code == 200 and "Thank you" in again.text

    every = [occasion_id_of(trial.settings, path) for path in paths]
    assert stored_submissions(engine, every) == {occasion_id: WHO5_ITEMS for occasion_id in every}
