"""SMS through Twilio's Messages API, with the official `twilio` library.

Twilio's answers are sorted into what the dispatcher can act on: HTTP 429 and 5xx, network
errors, and account problems a person can fix (bad credentials, an unverified sender) are
transient; a refused recipient (invalid number, landline, carrier opt-out) is permanent.
Error 21610 means the recipient replied STOP to our sender at some point: the exception says so,
so that our own opt-out record follows the carrier's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.rest import Client

from .base import PermanentSendError, SendResult, TransientSendError, mask_recipient

OPTED_OUT = 21610
# Twilio error codes that refuse the recipient rather than our request or account.
RECIPIENT_REFUSED = {
    21211: "not a valid phone number",
    21214: "not a reachable phone number",
    21217: "not a valid phone number",
    21401: "not a valid phone number",
    21407: "a number that cannot receive SMS",
    21610: "opted out of messages from this sender (replied STOP)",
    21612: "not reachable from this sender",
    21614: "not a mobile number",
    21635: "not a mobile number",
}
# 4xx answers that a person can fix on the account; messages wait for them instead of failing.
# (21408: the recipient's country is not enabled in the account's geographic permissions.)
ACCOUNT_PROBLEMS = {20003, 20005, 21408, 21606, 21608, 21659, 21660}
# Slack for the provider's clock and ours when looking for a message sent "since" an instant.
CLOCK_SLACK = timedelta(minutes=2)


class TwilioSms:
    """The `sms` channel through Twilio.

    Give either `from_number` (a long code, toll-free number or short code) or
    `messaging_service_sid`. `status_callback` is the default delivery-status webhook
    (`FLOURISH_PUBLIC_URL/twilio/status`), used when `send` is not given one.
    """

    name = "sms"
    supports_status_lookup = True

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str = "",
        messaging_service_sid: str = "",
        status_callback: str | None = None,
        http_client: HttpClient | None = None,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback

    def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Create the message at Twilio; `subject` is ignored (SMS has none)."""
        sender = (
            {"messaging_service_sid": self.messaging_service_sid}
            if self.messaging_service_sid
            else {"from_": self.from_number}
        )
        callback = status_callback or self.status_callback
        if callback:
            sender["status_callback"] = callback
        try:
            message = self.client.messages.create(to=to, body=body, **sender)
        except TwilioRestException as exc:
            raise _classify(exc, to) from exc
        except (requests.RequestException, OSError, TwilioException) as exc:
            raise TransientSendError(f"Twilio unreachable: {type(exc).__name__}") from exc
        return SendResult(message.sid, status=message.status or "queued")

    def fetch_status(self, provider_message_id: str) -> str | None:
        """Twilio's status of the message (`queued`, `sent`, `delivered`, ...), None if Twilio
        has no such message; `TransientSendError` if Twilio cannot be asked right now."""
        try:
            return self.client.messages(provider_message_id).fetch().status
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise TransientSendError(f"Twilio status lookup failed: HTTP {exc.status}") from exc
        except (requests.RequestException, OSError, TwilioException) as exc:
            raise TransientSendError(f"Twilio unreachable: {type(exc).__name__}") from exc

    def find_sent(
        self, to: str, *, since: datetime, body: str, limit: int = 50
    ) -> SendResult | None:
        """The newest message Twilio holds to `to` with exactly `body`, created at or after
        `since` (less a little clock slack); None if there is none among the last `limit`."""
        try:
            recent = self.client.messages.list(to=to, limit=limit)
        except TwilioRestException as exc:
            raise TransientSendError(f"Twilio message lookup failed: HTTP {exc.status}") from exc
        except (requests.RequestException, OSError, TwilioException) as exc:
            raise TransientSendError(f"Twilio unreachable: {type(exc).__name__}") from exc
        earliest = since - CLOCK_SLACK
        for message in recent:
            created = message.date_created
            if message.body == body and (created is None or created >= earliest):
                return SendResult(message.sid, status=message.status or "queued")
        return None


def _classify(exc: TwilioRestException, to: str) -> Exception:
    status, code = exc.status, exc.code
    if status == 429 or status >= 500:
        return TransientSendError(f"Twilio busy or failing: HTTP {status} (code {code})", code=code)
    if code in RECIPIENT_REFUSED:
        return PermanentSendError(
            f"Twilio refused {mask_recipient(to)}: {RECIPIENT_REFUSED[code]} (code {code})",
            code=code,
            opted_out=code == OPTED_OUT,
        )
    if status in (401, 403) or code in ACCOUNT_PROBLEMS:
        return TransientSendError(
            f"Twilio account problem (HTTP {status}, code {code}): check TWILIO_* settings",
            code=code,
        )
    return PermanentSendError(f"Twilio refused the message: HTTP {status} (code {code})", code=code)
