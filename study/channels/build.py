"""The channels a deployment has, from its settings: Twilio and SMTP when configured, the
console otherwise, so that a fresh checkout runs a whole study without sending anything."""

from __future__ import annotations

import logging

from twilio.http import HttpClient

from study.config import Settings

from .base import Channel
from .console import ConsoleChannel
from .smtp_email import SmtpEmail, SmtpFactory
from .twilio_sms import TwilioSms

log = logging.getLogger("flourish.channels")
STATUS_CALLBACK_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/sms"


def build_channels(
    settings: Settings,
    *,
    twilio_http_client: HttpClient | None = None,
    smtp_factory: SmtpFactory | None = None,
    clock=None,
) -> dict[str, Channel]:
    """`{"sms": ..., "email": ...}` for these settings.

    SMS goes through Twilio when `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN` are set (with
    `TWILIO_FROM` or `TWILIO_MESSAGING_SERVICE_SID`), with delivery reports to
    `FLOURISH_PUBLIC_URL/twilio/status`. Email goes through SMTP when `SMTP_HOST` is set.
    `twilio_http_client` and `smtp_factory` let tests put a fake Twilio or a local SMTP
    server behind the real code.
    """
    channels: dict[str, Channel] = {}
    if settings.sms_backend == "twilio":
        channels["sms"] = TwilioSms(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            status_callback=settings.public_url + STATUS_CALLBACK_PATH,
            http_client=twilio_http_client,
        )
    else:
        channels["sms"] = ConsoleChannel("sms", clock=clock)
    if settings.email_backend == "smtp":
        channels["email"] = SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from or f"flourish@{settings.smtp_host}",
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            smtp_factory=smtp_factory,
            clock=clock,
        )
    else:
        channels["email"] = ConsoleChannel("email", clock=clock)
    if settings.is_production:
        for name, channel in channels.items():
            if isinstance(channel, ConsoleChannel):
                log.warning("%s goes to the console: nothing will reach participants", name)
    return channels
