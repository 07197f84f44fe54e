"""Chromium on a phone-sized screen: from the portal link to a streamed chat exchange, and a
provider error that keeps the message and is retried with one tap."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from study.protocol.registry import register_protocol
from tests.fakes.openai_server import TEST_API_KEY, FakeOpenAI
from tests.study.assistant.enrolled import copy_examples, enroll, protocol_using

pytestmark = pytest.mark.browser


@pytest.fixture
def endpoint():
    with FakeOpenAI(api_key=TEST_API_KEY) as server:
        yield server


@pytest.fixture
def portal_url(app, live_server, endpoint, tmp_path, monkeypatch, clock):
    monkeypatch.setenv("FLOURISH_ARM_INSTRUCT_API_KEY", TEST_API_KEY)
    protocol = protocol_using(copy_examples(tmp_path), endpoint.base_url)
    with Session(app.extensions["flourish"].engine, expire_on_commit=False) as db:
        register_protocol(db, protocol, actor="test")
        db.commit()
        participant = enroll(db, protocol, "instruct", code="P-PHONE1", now=clock.now())
    with app.test_request_context():
        from study.web.participate import portal_path

        return live_server + portal_path(participant.code)


def test_a_streamed_exchange_and_a_retry_on_a_phone(page, portal_url, endpoint):
    page.goto(portal_url)
    page.get_by_role("link", name="Chat with your study assistant").click()
    page.get_by_label("Your message").fill("How can I sleep better?")

    endpoint.reply(
        "Keep a regular bedtime.", chunks=["Keep", " a regular", " bedtime."], chunk_delay=0.4
    )
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".chat-from-assistant .chat-text").last
    # The first piece is on screen before the last has been sent: the reply streams.
    page.wait_for_function(
        "el => el.textContent === 'Keep'", arg=answer.element_handle(), polling=50
    )
    page.wait_for_function(
        "el => el.textContent === 'Keep a regular bedtime.'", arg=answer.element_handle()
    )
    expect(page.get_by_role("status")).to_have_text("The assistant has answered.")
    assert page.get_by_label("Your message").input_value() == ""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    endpoint.fail(500, "model crashed")
    page.get_by_label("Your message").fill("And naps?")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Your message is saved" in alert.text_content()
    page.get_by_role("button", name="Try again").click()
    page.locator(".chat-from-assistant .chat-text", has_text="You said: And naps?").wait_for()

    page.reload()  # everything said is on the server, not only in the page
    texts = page.locator(".chat-text").all_text_contents()
    assert texts == [
        "How can I sleep better?",
        "Keep a regular bedtime.",
        "And naps?",
        "You said: And naps?",
    ]
