"""SmtpEmail against a real SMTP server (aiosmtpd) listening on the loopback interface."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from study.channels import (
    PermanentSendError,
    SmtpEmail,
    StatusLookupUnsupported,
    TransientSendError,
)

SENDER = "Flourish study team <study@example.org>"


class Mailbox:
    """An SMTP handler that keeps what it receives and refuses chosen recipients."""

    def __init__(self) -> None:
        self.envelopes = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(handler, **kwargs) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def mailbox():
    return Mailbox()


@pytest.fixture
def server(mailbox):
    controller = start(mailbox)
    yield controller
    controller.stop()


def channel(port: int, **kwargs) -> SmtpEmail:
    kwargs.setdefault("starttls", False)
    return SmtpEmail("127.0.0.1", port, sender=SENDER, timeout=10, **kwargs)


def test_an_invitation_arrives_with_subject_body_link_and_message_id(server, mailbox, clock):
    link = "https://study.example.org/s/abc123"
    email = channel(server.port, clock=clock)

    result = email.send(
        "ada@example.net", f"Open it here:\n{link}\n", subject="Your questionnaire is ready"
    )

    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "study@example.org"
    assert envelope.rcpt_tos == ["ada@example.net"]
    [message] = mailbox.messages()
    assert message["Subject"] == "Your questionnaire is ready"
    assert message["To"] == "ada@example.net"
    assert message["From"] == SENDER
    assert message["Message-ID"] == f"<{result.provider_message_id}>"
    assert result.provider_message_id.endswith("@example.org")
    assert len(result.provider_message_id) <= 64
    assert message.get_content_type() == "text/plain"
    assert link in message.get_content()
    assert message["Date"] is not None


def test_each_message_gets_its_own_message_id(server):
    email = channel(server.port)
    first = email.send("a@example.net", "one", subject="1").provider_message_id
    second = email.send("a@example.net", "two", subject="2").provider_message_id
    assert first != second


def test_a_recipient_refused_with_5xx_is_permanent(server, mailbox):
    mailbox.refuse["gone@example.net"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentSendError) as raised:
        channel(server.port).send("gone@example.net", "hi", subject="s")
    assert raised.value.code == 550
    assert "gone@example.net" not in str(raised.value)
    assert mailbox.envelopes == []


def test_a_recipient_refused_with_4xx_is_transient(server, mailbox):
    mailbox.refuse["busy@example.net"] = "450 4.2.1 Mailbox busy, try later"
    with pytest.raises(TransientSendError) as raised:
        channel(server.port).send("busy@example.net", "hi", subject="s")
    assert raised.value.code == 450


def test_no_server_is_transient():
    with pytest.raises(TransientSendError, match="unreachable"):
        channel(free_port()).send("a@example.net", "hi", subject="s")


def test_starttls_required_but_not_offered_fails_rather_than_sending_in_clear(server, mailbox):
    with pytest.raises(TransientSendError):
        channel(server.port, starttls=True).send("a@example.net", "hi", subject="s")
    assert mailbox.envelopes == []


def test_login_with_the_configured_credentials(mailbox):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login, auth_data.password))
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    controller = start(mailbox, authenticator=authenticator, auth_require_tls=False)
    try:
        channel(controller.port, user="study", password="s3cret").send(
            "a@example.net", "hi", subject="s"
        )
        assert len(mailbox.envelopes) == 1
        assert seen[0][1:] == (b"study", b"s3cret")
        # A wrong password is the account's problem, so messages wait instead of failing.
        with pytest.raises(TransientSendError, match="SMTP_"):
            channel(controller.port, user="study", password="wrong").send(
                "a@example.net", "hi", subject="s"
            )
        assert len(mailbox.envelopes) == 1
    finally:
        controller.stop()


def test_smtp_cannot_look_up_what_became_of_a_message(clock):
    email = channel(25)
    assert email.supports_status_lookup is False
    with pytest.raises(StatusLookupUnsupported):
        email.fetch_status("x@example.org")
    with pytest.raises(StatusLookupUnsupported):
        email.find_sent("a@example.net", since=clock.now(), body="hi")


def test_the_sender_must_be_an_address():
    with pytest.raises(ValueError, match="SMTP_FROM"):
        SmtpEmail("127.0.0.1", 25, sender="Flourish")
