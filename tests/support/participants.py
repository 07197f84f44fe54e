"""Participants with open surveys, and answering a survey the way a phone's browser does.

Built on the dispatch tests' `make_trial` (the example study registered on a database, with a
fake Twilio behind the real SMS channel), so there is one way of making a trial in the suite:

    trial = make_real_time_trial(engine, settings)
    paths = open_survey_paths(trial, 20)           # ["/s/<token>", ...], one WHO-5 each
    response = submit_web_survey(server_url, paths[0])
    assert response.status_code == 303              # acknowledged: the answers are stored
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from study.clock import FakeClock
from study.config import Settings
from study.models import ItemResponse, Occasion, Response
from study.schedule.links import survey_link
from tests.conftest import csrf_token_from
from tests.study.schedule.test_dispatch import Trial, make_trial
from tests.study.test_surveys import who5_form

WHO5_ITEMS = 5


def make_real_time_trial(engine: Engine, settings: Settings, **changes) -> Trial:
    """A trial whose clock stands a minute before the wall clock, for tests against real
    processes (which use the system clock): what it makes is due now. `changes` replace
    settings (e.g. `public_url`)."""
    settings = dataclasses.replace(settings, **changes)
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=1))
    return make_trial(engine, settings, clock)


def midday_zone(now: datetime | None = None) -> str:
    """An IANA zone (`Etc/GMT±N`) where it is about midday at `now`: far from quiet hours, so
    a real-time dispatch test never waits for the night to end, whenever CI runs it."""
    now = now or datetime.now(UTC)
    offset = max(-12, min(14, round(12 - now.hour - now.minute / 60)))
    # POSIX sign convention: Etc/GMT-3 is three hours AHEAD of UTC.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def open_survey_paths(trial: Trial, count: int) -> list[str]:
    """`count` enrolled participants, each with an open WHO-5 occasion; their survey paths."""
    zone = midday_zone(trial.clock.now())
    paths = []
    for _ in range(count):
        occasion = trial.occasion(trial.enrol(timezone=zone))
        link = survey_link(trial.settings, occasion.id)
        paths.append(link.removeprefix(trial.settings.public_url))
    return paths


def submit_web_survey(
    base_url: str, path: str, form: dict[str, str] | None = None, *, timeout: float = 20.0
) -> httpx.Response:
    """Open the survey at `path`, then post its only page with CSRF token and cookie, as a
    browser would. Returns the POST's response (303 when the answers were accepted)."""
    with httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=False) as browser:
        page = browser.get(path)
        page.raise_for_status()
        data = {"csrf_token": csrf_token_from(page.text), "page": "1", **(form or who5_form())}
        return browser.post(path, data=data)


def occasion_id_of(settings: Settings, path: str) -> int:
    """The occasion a survey path belongs to."""
    from study.schedule.links import verify_survey_token

    occasion_id = verify_survey_token(settings, path.rsplit("/", 1)[-1])
    assert occasion_id is not None, path
    return occasion_id


def stored_submissions(engine: Engine, occasion_ids: list[int]) -> dict[int, int]:
    """For each occasion that is completed with a submitted response: its stored item count."""
    with Session(engine) as session:
        rows = session.execute(
            select(Occasion.id, func.count(ItemResponse.id))
            .join(Response, Response.occasion_id == Occasion.id)
            .join(ItemResponse, ItemResponse.response_id == Response.id)
            .where(
                Occasion.id.in_(occasion_ids),
                Occasion.status == "completed",
                Response.submitted_at.is_not(None),
            )
            .group_by(Occasion.id)
        ).all()
    return {occasion_id: items for occasion_id, items in rows}
