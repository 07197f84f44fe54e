"""An SMS survey through the real Twilio webhook: the dispatcher texts the first question
through the fake Twilio, and the participant answers by signed `POST /twilio/sms` requests."""

from __future__ import annotations

import itertools

import pytest
from sqlmodel import Session, select

from study import sms_surveys
from study.models import ItemResponse, Occasion, OutboundMessage, Response, SmsConversation
from study.web import create_app
from tests.study.schedule.test_dispatch import Trial, make_trial
from tests.study.web.test_twilio_hooks import inbound, signed_post

assert sms_surveys.answer  # importing the package registers the conversation handler


@pytest.fixture
def trial(settings, sqlite_engine, clock) -> Trial:
    return make_trial(sqlite_engine, settings, clock)


@pytest.fixture
def client(trial):
    app = create_app(trial.settings, engine=trial.engine, clock=trial.clock)
    app.config["WTF_CSRF_ENABLED"] = True
    return app.test_client()


def texted(trial: Trial):
    """A participant whose WHO-5 invitation, first question included, has just been sent, and
    a reminder still pending for tomorrow."""
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    trial.message(participant, occasion)
    assert trial.dispatch().sent == 1
    reminder = trial.message(
        participant, occasion, purpose="reminder", send_after=trial.clock.now().replace(hour=23)
    )
    return participant, occasion, reminder


def say(client, trial, participant, body, sid):
    response = signed_post(
        client, "/twilio/sms", inbound(body, sid=sid, sender=trial.phone(participant))
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def stored(trial: Trial, occasion) -> dict[str, float]:
    with Session(trial.engine) as session:
        return dict(
            session.exec(
                select(ItemResponse.item_id, ItemResponse.value)
                .join(Response, ItemResponse.response_id == Response.id)
                .where(Response.occasion_id == occasion.id)
            ).all()
        )


def test_an_sms_survey_answered_through_the_webhook(client, trial):
    participant, occasion, reminder = texted(trial)
    sids = (f"SM{n:032x}" for n in itertools.count(1))
    [invitation] = trial.fake.messages
    assert "1/5 Thinking of the last two weeks: I have felt cheerful" in invitation.body

    for invalid in ("9", "maybe", "2 3"):
        twiml = say(client, trial, participant, invalid, next(sids))
        assert "Sorry, please reply with one number from 0 to 5." in twiml
        assert "1/5 " in twiml
    assert stored(trial, occasion) == {}

    twiml = say(client, trial, participant, "4", next(sids))
    assert "<Message>2/5 I have felt calm and relaxed." in twiml
    for value in ("3", "2", "5"):
        say(client, trial, participant, value, next(sids))
    twiml = say(client, trial, participant, "1", next(sids))

    assert "Thank you, that was the last question." in twiml
    assert stored(trial, occasion) == {
        "who5_1": 4,
        "who5_2": 3,
        "who5_3": 2,
        "who5_4": 5,
        "who5_5": 1,
    }
    with Session(trial.engine) as session:
        assert session.get(Occasion, occasion.id).status == "completed"
        assert session.get(OutboundMessage, reminder.id).status == "cancelled"
        [response] = session.exec(select(Response)).all()
        assert (response.channel, response.status) == ("sms", "complete")
    assert trial.fake.message_count == 1  # the questions went back as TwiML, not as new sends


def test_a_twilio_retry_does_not_advance_the_conversation(client, trial):
    participant, occasion, _ = texted(trial)

    first = say(client, trial, participant, "4", "SM" + "e" * 32)
    retry = say(client, trial, participant, "4", "SM" + "e" * 32)

    assert retry == first and "2/5 " in retry
    assert stored(trial, occasion) == {"who5_1": 4}
    with Session(trial.engine) as session:
        conversation = session.exec(select(SmsConversation)).one()
        assert conversation.item_index == 1


def test_stop_in_the_middle_of_a_survey_opts_out_and_stores_nothing(client, trial):
    participant, occasion, reminder = texted(trial)

    twiml = say(client, trial, participant, "stop", "SM" + "f" * 32)

    assert "<Message>" not in twiml
    assert stored(trial, occasion) == {}
    trial.clock.advance(hours=15)
    trial.dispatch()
    with Session(trial.engine) as session:
        assert session.get(OutboundMessage, reminder.id).status == "cancelled"
    assert trial.fake.message_count == 1


def test_a_texter_without_a_survey_gets_the_default_reply(client, trial):
    participant = trial.enrol()
    twiml = say(client, trial, participant, "4", "SM" + "a" * 32)
    assert "Sorry, we did not understand your message. Reply HELP for help." in twiml
