"""A researcher's first visit, in a real Chromium: log in, find the example study, read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_PASSWORD

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"
SCREENSHOTS = Path(__file__).parents[2] / "_artifacts"

pytestmark = pytest.mark.browser


def test_a_researcher_logs_in_and_reads_the_example_study(
    live_server, page, make_researcher, example_study
):
    coordinator = make_researcher("coordinator")

    page.goto(live_server + "/")
    assert page.url.startswith(live_server + "/login")
    page.get_by_label("Email").fill(coordinator.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("Email or password is incorrect").is_visible()

    page.get_by_label("Email").fill(coordinator.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Studies").wait_for()

    page.get_by_role("link", name=example_study.title).click()
    page.get_by_role("heading", name=example_study.title).wait_for()
    body = page.locator("main").inner_text()
    for expected in ("Arms", "Schedule", "Protocol versions", "control"):
        assert expected.lower() in body.lower(), f"study page lacks {expected!r}"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "study-detail.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").wait_for()
    page.goto(live_server + "/studies/")
    assert page.url.startswith(live_server + "/login"), "logged-out session still reaches studies"
