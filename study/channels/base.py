"""What every channel promises: send a message, say whether a failure is worth retrying.

A channel never touches the database. The dispatcher decides what to do with a result: record
the provider's id, retry a `TransientSendError` later with backoff, give up on a
`PermanentSendError` (and, when `opted_out` is set, mirror the opt-out on the contact point).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SendResult:
    """A message the provider accepted. `status` is the provider's first word on it."""

    provider_message_id: str
    status: str = "sent"


class SendError(Exception):
    """A message could not be handed to the provider. `code` is the provider's error code."""

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """Worth retrying later: the network, the provider's load (HTTP 429/5xx), a 4xx SMTP reply,
    or account configuration that a person can fix (credentials, sender)."""


class PermanentSendError(SendError):
    """Retrying will not help: the recipient's number or address is invalid or refused.

    `opted_out` is true when the provider refused because the recipient opted out with the
    carrier (Twilio error 21610): the caller should record the opt-out on the contact point.
    """

    def __init__(
        self, message: str, *, code: int | str | None = None, opted_out: bool = False
    ) -> None:
        super().__init__(message, code=code)
        self.opted_out = opted_out


class StatusLookupUnsupported(NotImplementedError):
    """The channel cannot ask its provider what became of a message (e.g. SMTP)."""


@runtime_checkable
class Channel(Protocol):
    """A way to reach participants (`sms` or `email`).

    `supports_status_lookup` tells the dispatcher whether `fetch_status`/`find_sent` can settle
    what became of a message left in "sending" by a crash; when it is false they raise
    `StatusLookupUnsupported`.
    """

    name: str
    supports_status_lookup: bool

    def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Hand one message to the provider; raise `TransientSendError`/`PermanentSendError`."""
        ...

    def fetch_status(self, provider_message_id: str) -> str | None:
        """The provider's current status of a message; None if the provider has no such
        message. Raises `TransientSendError` when the provider cannot be asked right now."""
        ...

    def find_sent(self, to: str, *, since: datetime, body: str) -> SendResult | None:
        """A message with exactly this body sent to `to` at or after `since`, if the provider
        has one: how a crash between the provider's acceptance and our commit is detected."""
        ...


def mask_recipient(to: str) -> str:
    """A recipient shortened for logs: `+44*******123`, `j***@example.org`."""
    value = to.strip()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) < 8:
        return "*" * max(0, len(value) - 2) + value[-2:]
    return value[:3] + "*" * (len(value) - 6) + value[-3:]
