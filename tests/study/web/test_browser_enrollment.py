"""A participant joins the example study on a phone, in a real Chromium, and later withdraws."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from study.models import Allocation, Arm, ContactPoint, Participant

SCREENSHOTS = Path(__file__).parents[2] / "_artifacts"
SLUG = "assistant-flourishing-rct"
BROWSER_ZONE = "Pacific/Auckland"

pytestmark = pytest.mark.browser


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"participant-{name}.png"), full_page=True)


def fits_without_sideways_scrolling(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def answer(page, question: str, option: str) -> None:
    page.get_by_role("group", name=question).get_by_label(option, exact=True).check()


def test_a_participant_joins_on_a_phone_and_later_withdraws(live_server, page, app, example_study):
    # The phone's own time zone, which the page should offer as its guess.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})

    page.goto(f"{live_server}/join/{SLUG}")
    page.get_by_role("heading", name="Everyday Life and AI Assistants Study").wait_for()
    assert example_study.title not in page.content()
    page.get_by_role("link", name="Start").click()

    # Screener: a mistake first, then the error summary takes the focus and links to the field.
    page.get_by_label("How old are you (in years)?").fill("twenty-nine")
    page.get_by_role("button", name="Continue").click()
    summary = page.get_by_role("alert")
    assert "There is a problem" in summary.inner_text()
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    page.get_by_role("link", name="How old are you (in years)?").click()
    assert page.evaluate("document.activeElement.id") == "age"
    page.keyboard.press("Control+A")
    page.keyboard.type("29")
    answer(page, "Do you have your own mobile phone that can receive text messages?", "Yes")
    answer(page, "Can you read English comfortably?", "Yes")
    answer(page, "Are you currently receiving crisis or inpatient mental-health care", "No")
    page.set_viewport_size({"width": 195, "height": 422})  # 390px at 200% zoom
    assert fits_without_sideways_scrolling(page)
    shot(page, "1-screener-200pc")
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Continue").click()

    # The information sheet, part by part.
    progress = page.get_by_text("Information about the study: part 1 of")
    parts = int(progress.inner_text().rsplit(" ", 1)[-1])
    shot(page, "2-information")
    for number in range(2, parts + 1):
        page.get_by_role("link", name="Next part").click()
        page.get_by_text(f"Information about the study: part {number} of").wait_for()
    page.get_by_role("link", name="I have read the information").click()

    # Comprehension: one wrong answer, explained; re-read; then right.
    answer(page, "How is it decided which group you are in?", "The researchers choose")
    answer(
        page,
        "Can you stop taking part whenever you want?",
        "Yes, at any time, without giving a reason",
    )
    answer(page, "Who answers you in the assistant chat?", "An AI program, not a person")
    page.get_by_role("button", name="Check my answers").click()
    assert "1 answer is not right yet" in page.get_by_role("alert").inner_text()
    shot(page, "3-comprehension-retry")
    page.get_by_role("alert").get_by_role("link", name="re-read the information").click()
    page.get_by_text("Information about the study: part 1 of").wait_for()
    page.get_by_text("All parts").click()
    page.get_by_role("link", name="Consent", exact=True).click()
    page.get_by_role("link", name="I have read the information").click()
    answer(page, "How is it decided which group you are in?", "By chance, like drawing lots")
    answer(
        page,
        "Can you stop taking part whenever you want?",
        "Yes, at any time, without giving a reason",
    )
    answer(page, "Who answers you in the assistant chat?", "An AI program, not a person")
    page.get_by_role("button", name="Check my answers").click()

    # Signature, then the signed copy.
    page.get_by_role("heading", name="Your consent").wait_for()
    page.get_by_label("I agree that the text of my chats").check()
    page.get_by_label("Type your full name to sign").fill("Ada Lovelace")
    shot(page, "4-sign")
    page.get_by_role("button", name="I agree and sign").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download your signed copy (HTML)").click()
    copy = Path(download_info.value.path()).read_text()
    assert "Ada Lovelace" in copy and "Consent document version 1.0" in copy
    assert page.get_by_role("link", name="Withdraw from the study").is_visible()
    page.get_by_role("link", name="Continue").click()

    # WHO-5 baseline.
    page.get_by_role("heading", name="How you have been feeling").wait_for()
    for item in (
        "I have felt cheerful and in good spirits.",
        "I have felt calm and relaxed.",
        "I have felt active and vigorous.",
        "I woke up feeling fresh and rested.",
        "My daily life has been filled with things that interest me.",
    ):
        answer(page, item, "Some of the time")
    page.get_by_role("button", name="Continue").click()

    # Contact details.
    answer(page, "How would you like to receive invitations?", "Text message (SMS)")
    page.get_by_label("Mobile number").fill("+44 7700 900123")
    page.get_by_role("button", name="Continue").click()

    # Time zone: the browser's guess is filled in and announced; the participant confirms.
    zone = page.get_by_label("Time zone")
    zone.wait_for()
    assert zone.input_value() == BROWSER_ZONE
    assert page.get_by_text("We filled this in from your device's settings").is_visible()
    shot(page, "5-time-zone")
    page.get_by_role("button", name="Continue").click()

    # Enroll, with the keyboard.
    page.get_by_role("button", name="Join the study").focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Welcome to the study").wait_for()
    body = page.locator("main").inner_text()
    assert "Your group" in body
    assert ("study assistant" in body) or ("not given an assistant" in body)
    assert "What happens next" in body and "19:00 your time" in body
    assert fits_without_sideways_scrolling(page)
    shot(page, "6-welcome")

    with Session(app.extensions["flourish"].engine) as session:
        participant = session.exec(select(Participant)).one()
        allocation = session.exec(select(Allocation)).one()
        arm = session.get(Arm, allocation.arm_id)
        assert participant.status == "enrolled"
        assert participant.timezone == BROWSER_ZONE
        assert participant.strata == {"wellbeing": "low", "age_band": "under_35"}
        assert len(session.exec(select(ContactPoint)).all()) == 1
    assert arm.name not in body  # researchers' name for the arm stays with researchers
    assert "Your group" in body

    # Later: withdraw, with a confirmation first.
    page.get_by_role("link", name="Withdraw from the study").first.click()
    page.get_by_role("heading", name="Withdraw from the study").wait_for()
    shot(page, "7-withdraw")
    page.get_by_role("button", name="Yes, withdraw me from the study").click()
    page.get_by_role("heading", name="You have left the study").wait_for()
    shot(page, "8-withdrawn")
    with Session(app.extensions["flourish"].engine) as session:
        assert session.exec(select(Participant)).one().status == "withdrawn"
