"""Email through any SMTP server, with the standard library's `smtplib`.

One connection per message keeps failure handling simple and is fast enough for invitation
volumes (the dispatcher spreads sends over ticks). The Message-ID we generate is the provider
id: SMTP gives nothing back, and it is what a bounce or a participant's reply will quote.
"""

from __future__ import annotations

import secrets
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from .base import (
    PermanentSendError,
    SendResult,
    StatusLookupUnsupported,
    TransientSendError,
    mask_recipient,
)

SmtpFactory = Callable[[str, int, float], smtplib.SMTP]
MAX_ID_LENGTH = 64  # the width of OutboundMessage.provider_message_id


def default_smtp_factory(host: str, port: int, timeout: float) -> smtplib.SMTP:
    """An implicit-TLS connection on port 465, a plain one (upgraded by STARTTLS) otherwise."""
    if port == 465:
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    return smtplib.SMTP(host, port, timeout=timeout)


class SmtpEmail:
    """The `email` channel through SMTP. `sender` is an address or `Name <address>`."""

    name = "email"
    supports_status_lookup = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        user: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 30.0,
        smtp_factory: SmtpFactory | None = None,
        clock=None,
    ) -> None:
        display_name, address = parseaddr(sender)
        if "@" not in address:
            raise ValueError(f"SMTP_FROM={sender!r} is not an email address")
        self.host, self.port = host, port
        self.sender = Address(display_name, addr_spec=address)
        self.user, self.password = user, password
        self.starttls, self.timeout = starttls, timeout
        self._factory = smtp_factory or default_smtp_factory
        self._clock = clock

    def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Send a plain-text email; the Message-ID (without brackets) is the provider id."""
        message_id = self._message_id()
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject or ""
        message["Message-ID"] = f"<{message_id}>"
        now = self._clock.now() if self._clock is not None else datetime.now(UTC)
        message["Date"] = format_datetime(now)
        message.set_content(body)
        try:
            with self._factory(self.host, self.port, self.timeout) as smtp:
                if self.starttls and not isinstance(smtp, smtplib.SMTP_SSL):
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refused(to, exc.recipients) from exc
        except smtplib.SMTPDataError as exc:
            raise _reply(exc.smtp_code, exc.smtp_error, to) from exc
        except smtplib.SMTPResponseException as exc:
            # Refusing our connection, greeting, login or sender is the account's problem, not
            # the recipient's: messages wait for a person to fix it rather than fail.
            raise TransientSendError(
                f"SMTP server refused the session: {exc.smtp_code} "
                f"{_text(exc.smtp_error)[:200]} (check SMTP_* settings)",
                code=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientSendError(f"SMTP server unreachable: {type(exc).__name__}") from exc
        if refused:
            raise _refused(to, refused)
        return SendResult(message_id, status="sent")

    def fetch_status(self, provider_message_id: str) -> str | None:
        raise StatusLookupUnsupported("SMTP cannot say what became of a message")

    def find_sent(self, to: str, *, since: datetime, body: str) -> SendResult | None:
        raise StatusLookupUnsupported("SMTP cannot say what became of a message")

    def _message_id(self) -> str:
        domain = self.sender.domain
        token = secrets.token_hex(12)
        if len(token) + 1 + len(domain) > MAX_ID_LENGTH:
            domain = "flourish.invalid"
        return f"{token}@{domain}"


def _refused(to: str, recipients: dict) -> Exception:
    code, reply = next(iter(recipients.values()), (550, b""))
    return _reply(code, reply, to)


def _reply(code: int, reply: bytes | str, to: str) -> Exception:
    detail = f"SMTP {code} for {mask_recipient(to)}: {_text(reply)[:200]}"
    if 500 <= code < 600:
        return PermanentSendError(detail, code=code)
    return TransientSendError(detail, code=code)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
