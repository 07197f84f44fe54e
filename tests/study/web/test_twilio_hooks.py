"""Twilio's webhooks: signatures over the public URL, inbound keywords, delivery reports."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from study.models import AuditEvent, ContactPoint, InboundMessage, OutboundMessage, Participant
from study.pii import PiiVault
from study.web import create_app
from tests.fakes.twilio import AUTH_TOKEN
from tests.study.channels.people import enrolled_with_phone, register_example

PUBLIC = "https://study.example.org"
PHONE = "+447700900123"


@pytest.fixture
def app(settings, sqlite_engine, clock):
    """The app with Twilio configured; the test client calls http://localhost while Twilio
    signs https://study.example.org, as behind a TLS-terminating proxy."""
    configured = dataclasses.replace(
        settings, twilio_auth_token=AUTH_TOKEN, twilio_account_sid="AC" + "0" * 32
    )
    app = create_app(configured, engine=sqlite_engine, clock=clock)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def engine(app):
    return app.extensions["flourish"].engine


@pytest.fixture
def texter(app, engine, settings, clock):
    with Session(engine, expire_on_commit=False) as session:
        registration = register_example(session)
        return enrolled_with_phone(
            session,
            registration,
            PiiVault(settings.pii_key),
            code="P-WEB001",
            phone=PHONE,
            now=clock.now(),
        )


def signed_post(client, path, params, *, token=AUTH_TOKEN, url=None, query=""):
    full_path = f"{path}?{query}" if query else path
    signature = RequestValidator(token).compute_signature(url or PUBLIC + full_path, params)
    return client.post(full_path, data=params, headers={"X-Twilio-Signature": signature})


def inbound(body, sid="SM" + "1" * 32, sender=PHONE):
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }


def rows(engine, model):
    with Session(engine) as session:
        return list(session.exec(select(model)))


def test_a_signature_over_the_public_url_is_accepted_behind_a_proxy(client, engine, texter):
    response = signed_post(client, "/twilio/sms", inbound("hello"))

    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert "Reply HELP" in response.get_data(as_text=True)
    assert "<Response><Message>" in response.get_data(as_text=True)
    assert len(rows(engine, InboundMessage)) == 1


def test_a_signature_over_the_internal_url_is_refused(client, engine, texter):
    # What a naive check of `request.url` would accept: http and the internal host.
    response = signed_post(
        client, "/twilio/sms", inbound("hello"), url="http://localhost/twilio/sms"
    )
    assert response.status_code == 403
    assert rows(engine, InboundMessage) == []


def test_the_query_string_is_part_of_the_signed_url(client, engine, texter):
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    assert signed_post(client, "/twilio/status", params, query="attempt=abc").status_code == 200
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/status", params)
    response = client.post(
        "/twilio/status?attempt=abc", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/status"])
def test_a_missing_signature_is_refused_and_nothing_is_stored(client, engine, texter, path):
    response = client.post(path, data=inbound("STOP"))
    assert response.status_code == 403
    assert rows(engine, InboundMessage) == []
    assert all(c.opted_out_at is None for c in rows(engine, ContactPoint))


def test_a_forged_signature_is_refused_and_nothing_is_stored(client, engine, texter):
    response = signed_post(client, "/twilio/sms", inbound("WITHDRAW"), token="not-our-token")
    assert response.status_code == 403
    assert rows(engine, InboundMessage) == []
    assert rows(engine, Participant)[0].status == "enrolled"


def test_tampered_parameters_break_the_signature(client, engine, texter):
    params = inbound("hello")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/sms", params)
    params["Body"] = "WITHDRAW"
    response = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert rows(engine, Participant)[0].status == "enrolled"


def test_without_an_auth_token_every_webhook_is_refused(settings, sqlite_engine, clock):
    client = create_app(settings, engine=sqlite_engine, clock=clock).test_client()
    response = signed_post(client, "/twilio/sms", inbound("hello"), token="")
    assert response.status_code == 403


def test_a_repeated_message_sid_is_stored_once_with_the_same_reply(client, engine, texter):
    first = signed_post(client, "/twilio/sms", inbound("HELP"))
    again = signed_post(client, "/twilio/sms", inbound("HELP"))
    assert first.status_code == again.status_code == 200
    assert first.get_data() == again.get_data()
    assert len(rows(engine, InboundMessage)) == 1


def test_stop_and_start_mirror_the_opt_out(client, engine, texter, clock):
    stop = signed_post(client, "/twilio/sms", inbound("STOP", sid="SM" + "1" * 32))
    assert "<Message>" not in stop.get_data(as_text=True)
    [contact] = rows(engine, ContactPoint)
    assert contact.opted_out_at == clock.now()

    clock.advance(days=1)
    signed_post(client, "/twilio/sms", inbound("START", sid="SM" + "2" * 32))
    [contact] = rows(engine, ContactPoint)
    assert contact.opted_out_at is None


def test_help_replies_with_the_study_contact(client, texter):
    response = signed_post(client, "/twilio/sms", inbound("help"))
    assert "flourish-study@example.org" in response.get_data(as_text=True)


def test_withdraw_withdraws_and_cancels_pending_messages(client, engine, texter):
    response = signed_post(client, "/twilio/sms", inbound("WITHDRAW"))

    assert "left the study" in response.get_data(as_text=True)
    assert rows(engine, Participant)[0].status == "withdrawn"
    assert [m.status for m in rows(engine, OutboundMessage)] == ["cancelled"]
    actions = [e.action for e in rows(engine, AuditEvent)]
    assert "participant.withdraw" in actions


def test_status_callbacks_move_forward_only(client, engine, texter, clock):
    with Session(engine) as session:
        message = session.exec(select(OutboundMessage)).one()
        message.status, message.provider_message_id = "sent", "SM" + "b" * 32
        session.add(message)
        session.commit()

    def status(value):
        clock.advance(seconds=10)
        params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": value}
        return signed_post(client, "/twilio/status", params)

    assert status("delivered").status_code == 200
    delivered_at = clock.now()
    assert status("sent").status_code == 200
    [message] = rows(engine, OutboundMessage)
    assert message.status == "delivered"
    assert message.status_updated_at == delivered_at


def test_a_status_callback_for_an_unknown_message_is_accepted(client, engine, texter):
    params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
    assert signed_post(client, "/twilio/status", params).status_code == 200
    assert [m.status for m in rows(engine, OutboundMessage)] == ["pending"]


def test_the_webhooks_need_no_csrf_token_but_other_posts_still_do(client, texter):
    assert signed_post(client, "/twilio/sms", inbound("hello")).status_code == 200
    assert client.post("/login", data={"email": "a@example.org"}).status_code == 400


def test_the_web_app_alone_routes_replies_to_sms_survey_conversations(tmp_path):
    # In a fresh interpreter, so that no test's own import of study.sms_surveys hides a
    # web app that forgot to install the handler.
    import subprocess
    import sys

    script = (
        "from study.web import create_app\n"
        "from study.channels import inbound\n"
        "create_app()\n"
        "print([h.__module__ + '.' + h.__name__ for h in inbound._handlers])\n"
    )
    env = {"FLOURISH_INSTANCE_PATH": str(tmp_path), "FLOURISH_ENV": "test", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "study.sms_surveys" in out
