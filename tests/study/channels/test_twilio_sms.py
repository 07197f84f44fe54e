"""TwilioSms through the real `twilio.rest.Client`, against the fake Messages API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from study.channels import PermanentSendError, TransientSendError, TwilioSms
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

PHONE = "+447700900123"
SENDER = "+15005550006"
CALLBACK = "https://study.example.org/twilio/status"


@pytest.fixture
def fake(clock) -> FakeTwilio:
    return FakeTwilio(clock=clock)


@pytest.fixture
def sms(fake) -> TwilioSms:
    return TwilioSms(
        ACCOUNT_SID, AUTH_TOKEN, from_number=SENDER, status_callback=CALLBACK, http_client=fake
    )


def test_send_creates_one_message_with_the_sender_body_and_status_callback(sms, fake):
    result = sms.send(PHONE, "Your questionnaire is ready")

    assert fake.message_count == 1
    message = fake.messages[0]
    assert result.provider_message_id == message.sid
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert result.status == "queued"
    assert (message.to, message.from_, message.body) == (
        PHONE,
        SENDER,
        "Your questionnaire is ready",
    )
    assert message.status_callback == CALLBACK
    request = fake.requests[-1]
    assert request.method == "POST"
    assert request.url.endswith(f"/Accounts/{ACCOUNT_SID}/Messages.json")
    assert "MessagingServiceSid" not in request.data


def test_a_callback_given_to_send_overrides_the_default(sms, fake):
    sms.send(PHONE, "hi", status_callback="https://other.example.org/cb")
    assert fake.messages[0].status_callback == "https://other.example.org/cb"


def test_a_messaging_service_is_used_instead_of_a_from_number(fake):
    sms = TwilioSms(
        ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid="MG" + "1" * 32, http_client=fake
    )
    result = sms.send(PHONE, "hi")

    data = fake.requests[-1].data
    assert data["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in data and "StatusCallback" not in data
    assert result.status == "accepted"


def test_twilio_needs_a_sender():
    with pytest.raises(ValueError, match="TWILIO_FROM"):
        TwilioSms(ACCOUNT_SID, AUTH_TOKEN)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_provider_load_and_outages_are_transient(sms, fake, status):
    fake.fail_next(status=status, code=20429 if status == 429 else None)
    with pytest.raises(TransientSendError):
        sms.send(PHONE, "hi")
    assert fake.message_count == 0
    # The next attempt goes through: the failure was one request, not a broken channel.
    sms.send(PHONE, "hi")
    assert fake.message_count == 1


def test_a_network_error_is_transient(sms, fake):
    fake.fail_network()
    with pytest.raises(TransientSendError, match="unreachable"):
        sms.send(PHONE, "hi")
    assert fake.message_count == 0


def test_an_invalid_number_is_permanent_and_not_an_opt_out(sms, fake):
    with pytest.raises(PermanentSendError) as raised:
        sms.send("07700 900123", "hi")
    assert raised.value.code == 21211
    assert raised.value.opted_out is False
    assert fake.message_count == 0


def test_an_unsubscribed_recipient_is_permanent_and_says_the_number_opted_out(sms, fake):
    fake.reject(PHONE, code=21610)
    with pytest.raises(PermanentSendError) as raised:
        sms.send(PHONE, "hi")
    assert raised.value.code == 21610
    assert raised.value.opted_out is True
    # The log-bound message never carries the whole number.
    assert PHONE not in str(raised.value)


def test_a_landline_is_permanent(sms, fake):
    fake.reject(PHONE, code=21614)
    with pytest.raises(PermanentSendError) as raised:
        sms.send(PHONE, "hi")
    assert raised.value.opted_out is False


def test_wrong_credentials_wait_for_a_person_instead_of_failing_messages(fake):
    sms = TwilioSms(ACCOUNT_SID, "wrong-token", from_number=SENDER, http_client=fake)
    with pytest.raises(TransientSendError, match="account problem"):
        sms.send(PHONE, "hi")


def test_an_unclassified_client_error_is_permanent(sms, fake):
    fake.fail_next(status=400, code=21617, message="body too long")
    with pytest.raises(PermanentSendError):
        sms.send(PHONE, "hi")


def test_fetch_status_reads_the_message_from_twilio(sms, fake):
    sid = sms.send(PHONE, "hi").provider_message_id
    assert sms.fetch_status(sid) == "queued"
    fake.set_status(sid, "delivered")
    assert sms.fetch_status(sid) == "delivered"
    assert fake.requests[-1].method == "GET"
    assert fake.requests[-1].url.endswith(f"/Messages/{sid}.json")


def test_fetch_status_of_an_unknown_message_is_none(sms):
    assert sms.fetch_status("SM" + "0" * 32) is None


def test_fetch_status_when_twilio_cannot_be_asked_is_transient_not_none(sms, fake):
    sid = sms.send(PHONE, "hi").provider_message_id
    fake.fail_next(status=500)
    with pytest.raises(TransientSendError):
        sms.fetch_status(sid)
    fake.fail_network()
    with pytest.raises(TransientSendError):
        sms.fetch_status(sid)


def test_find_sent_recovers_a_message_whose_response_was_lost(sms, fake, clock):
    claimed_at = clock.now()
    sms.send(PHONE, "an older message")
    fake.lose_responses()
    with pytest.raises(TransientSendError):
        sms.send(PHONE, "invitation 42")
    assert fake.message_count == 2  # Twilio did accept it

    found = sms.find_sent(PHONE, since=claimed_at, body="invitation 42")

    assert found is not None
    assert found.provider_message_id == fake.messages_to(PHONE)[-1].sid
    assert sms.find_sent(PHONE, since=claimed_at, body="never sent") is None
    assert sms.find_sent("+447700900999", since=claimed_at, body="invitation 42") is None


def test_find_sent_ignores_the_same_text_sent_long_before(sms, clock):
    sms.send(PHONE, "same words")
    clock.advance(hours=1)
    assert sms.find_sent(PHONE, since=clock.now(), body="same words") is None
    assert sms.find_sent(PHONE, since=clock.now() - timedelta(hours=2), body="same words")
