"""The dashboards in a real Chromium: sign in, every page, a filter, a CSV download, contact
details and a retry, with no CSP violation on the way. Screenshots go to tests/_artifacts, or
to docs/img/dashboards/ with FLOURISH_DOC_SCREENSHOTS=1 (how the docs' images are made)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.conftest import TEST_PASSWORD

from .conftest import EMAIL

ROOT = Path(__file__).parents[2]
SHOTS = (
    ROOT / "docs/img/dashboards"
    if os.environ.get("FLOURISH_DOC_SCREENSHOTS")
    else ROOT / "tests/_artifacts/dashboards"
)

pytestmark = pytest.mark.browser


def shoot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let plotly finish its transition before the picture
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def section(page, title):
    return page.locator("section.card", has=page.get_by_role("heading", name=title))


def test_an_investigator_works_through_every_dashboard_page(
    live_server, page, make_researcher, small_study, tmp_path
):
    investigator = make_researcher("investigator")
    problems = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security" in m.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if "/dashboard/" in r.url and r.status >= 400
            else None
        ),
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    page.set_default_timeout(30_000)  # the compliance callback is the slowest on a busy machine

    page.goto(live_server + "/dashboard/compliance")
    assert page.url.startswith(live_server + "/login")
    page.get_by_label("Email").fill(investigator.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Compliance").wait_for()

    # Overview
    page.get_by_role("link", name="Study overview").click()
    consort = section(page, "CONSORT flow")
    consort.get_by_text("completed final wave").wait_for()
    assert "randomised" in consort.inner_text()
    page.locator("#overview-enrollment-chart .main-svg").first.wait_for()
    shoot(page, "overview")

    # Compliance: narrow to wave 1, then download the response rates
    page.get_by_role("link", name="Compliance").click()
    rates = section(page, "Response rate by wave and arm")
    rates.locator("td").first.wait_for()
    assert "2" in [
        cell.strip() for cell in rates.locator("tbody tr td:first-child").all_inner_texts()
    ]
    page.locator("#compliance-wave").click()
    page.get_by_role("option", name="1", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#compliance-rates tbody tr td:first-child')]"
        ".every(td => td.textContent.trim() === '1')"
    )
    page.locator("#compliance-heatmap .main-svg").first.wait_for()
    shoot(page, "compliance")
    with page.expect_download() as info:
        rates.get_by_role("button", name="Download CSV").click()
    target = tmp_path / "rates.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(target.open()))
    assert info.value.suggested_filename == "compliance-rates.csv"
    assert sorted((row["arm"], row["response_rate"]) for row in rows) == [
        ("control", "0.0"),
        ("instruct", "0.5"),
        ("reflective", "1.0"),
    ]

    # Participant timeline, with contact details on request
    page.get_by_role("link", name="Participant timeline").click()
    page.get_by_label("Participant code").fill("P-A001")
    page.keyboard.press("Enter")
    page.get_by_text("P-A001: enrolled").wait_for()
    assert EMAIL not in page.content()
    page.get_by_role("button", name="Show contact details").click()
    page.get_by_text(f"email: {EMAIL}").wait_for()
    page.locator("#timeline-chart .main-svg").first.wait_for()
    shoot(page, "timeline")

    # Message queue: retry the undelivered SMS
    page.get_by_role("link", name="Message queue").click()
    option = page.get_by_label(f"#{small_study.messages['C001-2']}", exact=False)
    option.check()
    page.get_by_role("button", name="Retry selected").click()
    page.get_by_text("queued again").wait_for()
    section(page, "Messages waiting or failed").get_by_text("pending").first.wait_for()
    shoot(page, "queue")

    assert problems == []
