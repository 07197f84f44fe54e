"""The console channel: the default that sends nothing and shows what would have been sent."""

from __future__ import annotations

import logging
from datetime import timedelta

from study.channels import Channel, ConsoleChannel, mask_recipient


def test_messages_are_kept_in_order_with_distinct_ids(clock):
    console = ConsoleChannel("sms", clock=clock)
    first = console.send("+447700900123", "one")
    second = console.send("+447700900456", "two", subject=None, status_callback="https://x/cb")

    assert isinstance(console, Channel)
    assert first.provider_message_id != second.provider_message_id
    assert [m.body for m in console.outbox] == ["one", "two"]
    assert console.outbox[1].status_callback == "https://x/cb"
    assert console.outbox[0].sent_at == clock.now()
    assert [m.body for m in console.messages_to("+447700900456")] == ["two"]


def test_the_log_shows_the_message_but_masks_the_recipient(caplog):
    console = ConsoleChannel("email")
    with caplog.at_level(logging.INFO, logger="flourish.channels.console"):
        console.send("ada.lovelace@example.net", "Open https://x/s/1", subject="Ready")

    logged = caplog.text
    assert "Open https://x/s/1" in logged and "Ready" in logged
    assert "ada.lovelace" not in logged
    assert "a***@example.net" in logged


def test_status_lookup_knows_only_its_own_messages(clock):
    console = ConsoleChannel("sms", clock=clock)
    sent = console.send("+447700900123", "hello")
    assert console.fetch_status(sent.provider_message_id) == "sent"
    assert console.fetch_status("console-sms-999") is None
    earlier = clock.now() - timedelta(minutes=1)
    assert console.find_sent("+447700900123", since=earlier, body="hello") == sent
    assert console.find_sent("+447700900123", since=earlier, body="other") is None
    assert (
        console.find_sent("+447700900123", since=clock.now() + timedelta(1), body="hello") is None
    )


def test_masking_keeps_only_the_ends_of_a_number_and_the_domain_of_an_address():
    assert mask_recipient("+447700900123") == "+44*******123"
    assert mask_recipient("ada@example.net") == "a***@example.net"
    assert mask_recipient("12345") == "***45"
