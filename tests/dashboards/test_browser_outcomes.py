"""The outcomes, assistant-usage and data-quality pages in a real Chromium: an investigator sees
outcomes under letters, unblinds the study with a reason, and then sees the arms; usage and
data quality draw, and a `<script>` typed into a free-text answer shows as text and never runs.
Screenshots go to tests/_artifacts, or to docs/img/dashboards/ with FLOURISH_DOC_SCREENSHOTS=1."""

from __future__ import annotations

import csv

import pytest
from sqlmodel import Session, select

from study.models import AuditEvent
from tests.conftest import TEST_PASSWORD

from .outcomes_quality_answers import SCRIPT, answer_on_app
from .test_browser import section, shoot

pytestmark = pytest.mark.browser


@pytest.fixture
def study(app, small_study):
    return answer_on_app(app, small_study)


def cells(table, column: int) -> list[str]:
    return [c.strip() for c in table.locator(f"tbody tr td:nth-child({column})").all_inner_texts()]


def test_an_investigator_unblinds_outcomes_and_reviews_usage_and_quality(
    app, live_server, page, make_researcher, study, tmp_path
):
    investigator = make_researcher("investigator")
    problems, dialogs = [], []
    page.on("console", lambda m: problems.append(m.text) if "Content Security" in m.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.goto(live_server + "/dashboard/outcomes")
    page.get_by_label("Email").fill(investigator.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Outcomes", exact=True).wait_for()

    # Blinded, even for an investigator: letters only.
    trajectories = section(page, "Outcome by arm and wave")
    trajectories.locator("td").first.wait_for()
    assert {arm for arm in cells(trajectories, 1)} <= {"Arm A", "Arm B", "Arm C"}
    assert "reflective" not in page.locator("main").inner_text()
    with page.expect_download() as info:
        trajectories.get_by_role("button", name="Download CSV").click()
    target = tmp_path / "outcomes.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(target.open()))
    assert sorted(row["n"] for row in rows) == ["1", "2", "2"]
    assert all(row["arm"].startswith("Arm ") for row in rows)

    # Unblind, with a reason; the table and the chart now name the arms.
    page.get_by_label("Reason for unblinding").fill("Primary analysis locked")
    page.get_by_role("button", name="Unblind study").click()
    page.locator("p.unblinded", has_text="Primary analysis locked").wait_for()
    page.get_by_role("button", name="Unblind study").wait_for(state="hidden")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#outcomes-trajectories tbody td:first-child')]"
        ".some(td => td.textContent.trim() === 'reflective')"
    )
    assert sorted(set(cells(trajectories, 1))) == ["instruct", "reflective"]
    page.locator("#outcomes-chart .main-svg").first.wait_for()
    shoot(page, "outcomes")
    with Session(app.extensions["flourish"].engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "study.unblinded"))
        assert event.details == {"reason": "Primary analysis locked"}

    # Assistant usage: P-A001's one active minute is an alert once the threshold is 0 hours.
    page.get_by_role("link", name="Assistant usage").click()
    by_arm = section(page, "Usage by arm and week")
    by_arm.locator("td").first.wait_for()
    assert "instruct" in cells(by_arm, 1)
    page.get_by_label("Alert above active hours per week").fill("0")
    page.keyboard.press("Enter")
    section(page, "Heavy-use alerts").get_by_text("P-A001").wait_for()
    page.locator("#usage-chart .main-svg").first.wait_for()
    shoot(page, "usage")

    # Data quality: the script in a free-text answer is text on the page, and never ran.
    page.get_by_role("link", name="Data quality").click()
    texts = section(page, "Free-text answers")
    texts.get_by_text(SCRIPT).wait_for()
    straight = section(page, "Straight-lining")
    straight.locator("td").first.wait_for()
    assert cells(straight, 1) == ["P-A001"]
    assert page.locator("main script").count() == 0
    duplicates = section(page, "Participants sharing a phone number or email address")
    duplicates.get_by_text("P-A001, P-B002").wait_for()
    shoot(page, "quality")

    assert dialogs == []
    assert problems == []
