"""Inbound SMS webhooks with any body, sender and message id, correctly signed (so they pass
the signature check and reach the handlers): never a server error, each message stored at most
once, and participants left in a state that exists. Runs on SQLite and PostgreSQL, whose
column limits and text rules differ.

Message ids are shaped as Twilio's (SM + 32 hex digits) and bodies carry no NUL character;
the cases outside that (which only a holder of the auth token could send) are pinned at the end:
NUL stripped from bodies, ids that are not Twilio's refused with 400.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from study.db import make_engine
from study.models import InboundMessage, Participant
from study.models.participants import PARTICIPANT_STATUSES
from study.pii import PiiVault
from study.web import create_app
from tests.fakes.twilio import AUTH_TOKEN
from tests.fuzz import fuzz_settings
from tests.study.channels.people import enrolled_with_phone, register_example

PUBLIC = "https://study.example.org"
PHONE = "+447700900123"
NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")

SENDERS = st.one_of(
    st.just(PHONE),
    st.sampled_from(["+15005550006", "447700900123", "+44 7700 900123", "", "whatsapp:" + PHONE]),
    st.text(max_size=40),  # a sender is looked up, never stored: any text
)
BODIES = st.one_of(
    st.sampled_from(["STOP", "stop ", "HELP", "INFO", "WITHDRAW", "START", "UNSTOP", "3", "10"]),
    st.text(NO_NUL, max_size=200),
    st.text(NO_NUL, min_size=1000, max_size=2000),
)
SIDS = st.one_of(
    st.sampled_from(["SM" + "1" * 32, "SM" + "2" * 32]),  # repeats: Twilio's retries
    st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda digits: "SM" + digits),
)
EXTRA = st.dictionaries(
    st.sampled_from(["NumMedia", "MediaUrl0", "OptOutType", "SmsStatus", "To", "AccountSid"]),
    st.text(max_size=50),
    max_size=3,
)


def post_inbound(engine, settings, clock, params: dict[str, str]):
    """A correctly signed inbound SMS to an app on `engine` with one texting participant."""
    configured = dataclasses.replace(
        settings, twilio_auth_token=AUTH_TOKEN, twilio_account_sid="AC" + "0" * 32
    )
    app = create_app(configured, engine=engine, clock=clock)
    with Session(engine, expire_on_commit=False) as session:
        if session.exec(select(Participant)).first() is None:
            enrolled_with_phone(
                session,
                register_example(session),
                PiiVault(settings.pii_key),
                code="P-FUZZSMS",
                phone=PHONE,
                now=clock.now(),
            )
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/sms", params)
    return app.test_client().post(
        "/twilio/sms", data=params, headers={"X-Twilio-Signature": signature}
    )


@fuzz_settings(60)
@given(sender=SENDERS, body=BODIES, sid=SIDS, extra=EXTRA)
def test_any_signed_inbound_sms_is_answered_without_a_500_and_stored_at_most_once(
    engine, settings, clock, sender, body, sid, extra
):
    params = {**extra, "MessageSid": sid, "SmsSid": sid, "From": sender, "Body": body}
    response = post_inbound(engine, settings, clock, params)

    assert response.status_code in (200, 400), response.status_code
    with Session(engine) as session:
        stored = session.exec(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.provider_message_id == sid)
        ).one()
        assert stored <= 1
        assert {p.status for p in session.exec(select(Participant))} <= set(PARTICIPANT_STATUSES)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("params", "status", "stored_body"),
    [
        ({"MessageSid": "SM" + "1" * 32, "Body": "a\x00b"}, 200, "ab"),
        ({"MessageSid": "SM" + "9" * 80, "Body": "hello"}, 400, None),
        ({"MessageSid": "SM\x00" + "2" * 31, "Body": "hello"}, 400, None),
    ],
    ids=["nul-in-body", "sid-too-long", "nul-in-sid"],
)
def test_out_of_shape_fields_are_cleaned_or_refused_not_a_500_on_postgres(
    postgres_template, settings, clock, params, status, stored_body
):
    """Found by the fuzz test above: PostgreSQL's text cannot hold NUL and the sid column is 64
    characters, so the webhook strips NUL from bodies and refuses ids that are not Twilio's."""
    engine = make_engine(postgres_template.fresh_url())
    try:
        response = post_inbound(engine, settings, clock, {**params, "From": PHONE})
        assert response.status_code == status
        with Session(engine) as session:
            bodies = session.exec(select(InboundMessage.body)).all()
        assert bodies == ([stored_body] if stored_body is not None else [])
    finally:
        engine.dispose()
