"""Which channels a deployment gets from its settings."""

from __future__ import annotations

import dataclasses

from study.channels import ConsoleChannel, SmtpEmail, TwilioSms, build_channels
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio


def test_without_twilio_or_smtp_both_channels_go_to_the_console(settings):
    channels = build_channels(settings)
    assert set(channels) == {"sms", "email"}
    assert all(isinstance(channel, ConsoleChannel) for channel in channels.values())
    assert channels["sms"].name == "sms" and channels["email"].name == "email"


def test_twilio_settings_give_twilio_sms_reporting_to_the_public_url(settings):
    fake = FakeTwilio()
    configured = dataclasses.replace(
        settings,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from="+15005550006",
    )
    channels = build_channels(configured, twilio_http_client=fake)

    assert isinstance(channels["sms"], TwilioSms)
    assert isinstance(channels["email"], ConsoleChannel)
    channels["sms"].send("+447700900123", "hello")
    assert fake.messages[0].status_callback == "https://study.example.org/twilio/status"


def test_smtp_settings_give_smtp_email(settings):
    configured = dataclasses.replace(
        settings, smtp_host="mail.example.org", smtp_port=2525, smtp_from="study@example.org"
    )
    channels = build_channels(configured)
    email = channels["email"]
    assert isinstance(email, SmtpEmail)
    assert (email.host, email.port, email.starttls) == ("mail.example.org", 2525, True)
    assert email.sender.addr_spec == "study@example.org"
