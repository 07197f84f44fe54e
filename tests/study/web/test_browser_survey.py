"""A participant answers a weekly questionnaire on a phone, in a real Chromium: from the link
in their message to the thank-you page, with one mistake on the way and a break in between."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from study.models import ItemResponse, Occasion, Response
from study.schedule.links import survey_link
from tests.study.test_surveys import add_occasion, enrolled_participant, register_example

SCREENSHOTS = Path(__file__).parents[2] / "_artifacts"

pytestmark = pytest.mark.browser


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"survey-{name}.png"), full_page=True)


def fits_without_sideways_scrolling(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def answer(page, question: str, option: str) -> None:
    page.get_by_role("group", name=question).get_by_label(option, exact=True).check()


def test_a_participant_answers_a_survey_on_a_phone(live_server, page, app, settings, clock):
    engine = app.extensions["flourish"].engine
    with Session(engine, expire_on_commit=False) as session:
        participant = enrolled_participant(session, register_example(session), clock.now())
        occasion = add_occasion(session, participant, clock.now())
    link = survey_link(settings, occasion.id).replace(settings.public_url, live_server)

    page.goto(link)
    page.get_by_text("Page 1 of 2").wait_for()
    who5 = [
        "I have felt cheerful and in good spirits.",
        "I have felt calm and relaxed.",
        "I have felt active and vigorous.",
        "I woke up feeling fresh and rested.",
    ]
    for question in who5:
        answer(page, question, "Most of the time")
    # One question left out: the summary takes the focus and links to it.
    page.get_by_role("button", name="Save and continue").click()
    assert "There is a problem" in page.get_by_role("alert").inner_text()
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    shot(page, "1-error")
    assert fits_without_sideways_scrolling(page)
    for question in who5:  # still checked after the error
        group = page.get_by_role("group", name=question)
        assert group.get_by_label("Most of the time", exact=True).is_checked()
    answer(page, "My daily life has been filled with things that interest me.", "Some of the time")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_text("Page 2 of 2").wait_for()

    # A break: the phone is closed, and the same link opens where it stopped.
    page.goto("about:blank")
    page.goto(link)
    page.get_by_text("Page 2 of 2").wait_for()
    for question, rating in [
        ("Right now, how happy do you feel?", "7"),
        ("Right now, how calm do you feel?", "4"),
        ("Right now, how connected to other people do you feel?", "10"),
    ]:
        answer(page, question, rating)
    page.set_viewport_size({"width": 320, "height": 640})
    assert fits_without_sideways_scrolling(page)
    shot(page, "2-ratings")
    page.get_by_role("button", name="Submit my answers").click()
    page.get_by_role("heading", name="Thank you").wait_for()
    shot(page, "3-thanks")

    # Back and submit again: still one submission.
    page.go_back()
    page.goto(link)
    page.get_by_role("heading", name="Thank you").wait_for()
    with Session(engine) as session:
        assert session.get(Occasion, occasion.id).status == "completed"
        responses = session.exec(select(Response)).all()
        assert {(r.instrument_id, r.status) for r in responses} == {
            ("who5", "complete"),
            ("momentary_affect", "complete"),
        }
        values = dict(session.exec(select(ItemResponse.item_id, ItemResponse.value)).all())
        assert len(values) == 8
        assert values["who5_5"] == 1.0 and values["ema_connected"] == 10.0
