"""The console channel: the default when neither Twilio nor SMTP is configured.

Nothing leaves the machine. Each message is logged with its recipient masked (the log is no
place for contact details) and kept in memory, so that development runs and tests can see what
would have been sent.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from .base import SendResult, mask_recipient

log = logging.getLogger("flourish.channels.console")


@dataclass(frozen=True)
class ConsoleMessage:
    """A message the console channel "sent"."""

    provider_message_id: str
    to: str
    body: str
    subject: str | None
    status_callback: str | None
    sent_at: datetime


class ConsoleChannel:
    """Logs messages instead of sending them and keeps them in `outbox` (thread-safe)."""

    supports_status_lookup = True

    def __init__(self, name: str, *, clock=None) -> None:
        self.name = name
        self.outbox: list[ConsoleMessage] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Record the message and log it (recipient masked); never fails."""
        with self._lock:
            message = ConsoleMessage(
                provider_message_id=f"console-{self.name}-{next(self._numbers)}",
                to=to,
                body=body,
                subject=subject,
                status_callback=status_callback,
                sent_at=self._now(),
            )
            self.outbox.append(message)
        log.info(
            "%s to %s%s: %s",
            self.name,
            mask_recipient(to),
            f" [{subject}]" if subject else "",
            body,
        )
        return SendResult(message.provider_message_id, status="sent")

    def fetch_status(self, provider_message_id: str) -> str | None:
        """`sent` for a message in the outbox, None otherwise."""
        with self._lock:
            known = any(m.provider_message_id == provider_message_id for m in self.outbox)
        return "sent" if known else None

    def find_sent(self, to: str, *, since: datetime, body: str) -> SendResult | None:
        """The newest outbox message with this recipient and body sent at or after `since`."""
        with self._lock:
            for message in reversed(self.outbox):
                if message.to == to and message.body == body and message.sent_at >= since:
                    return SendResult(message.provider_message_id, status="sent")
        return None

    def messages_to(self, to: str) -> list[ConsoleMessage]:
        """Everything sent to `to`, oldest first."""
        with self._lock:
            return [message for message in self.outbox if message.to == to]

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)
