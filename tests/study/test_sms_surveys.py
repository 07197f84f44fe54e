"""SMS surveys: the dispatcher asks the first question with the invitation, replies answer one
item each, invalid replies are re-asked and never stored, and the conversation ends with the
occasion completed or closed.

The example study runs on a fresh database with the real Twilio client against the fake Twilio
(the fixtures of tests/study/schedule/test_dispatch.py); replies go through `receive_sms`, as
the webhook calls it (tests/study/web/test_sms_survey_conversation.py goes through HTTP).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from consent import version_in_force, withdraw
from instruments.translations import LocalizedAnchor, LocalizedScale
from study import sms_surveys
from study.channels import receive_sms
from study.models import (
    AuditEvent,
    ContactPoint,
    ItemResponse,
    Occasion,
    OutboundMessage,
    Participant,
    Response,
    SmsConversation,
)
from study.sms_surveys import ConversationPolicy
from study.sms_surveys.prompts import Question, allowed_answers, ask, read_answer
from tests.study.schedule import test_dispatch
from tests.study.schedule.test_dispatch import Trial

trial = test_dispatch.trial
sids = (f"SM{n:032x}" for n in itertools.count(1))

WHO5_FIRST = (
    "1/10 Thinking of the last two weeks: I have felt cheerful and in good spirits. "
    "Reply 0-5 (0 = At no time, 5 = All of the time)"
)


# --- helpers --------------------------------------------------------------------------------------


def surveyed(trial: Trial, instruments=("who5", "swls"), **occasion) -> tuple:
    """An enrolled participant whose SMS invitation for `instruments` has just gone out."""
    participant = trial.enrol()
    occasion = trial.occasion(participant, **occasion)
    with Session(trial.engine) as session:
        stored = session.get(Occasion, occasion.id)
        stored.instruments = list(instruments)
        session.add(stored)
        session.commit()
    message = trial.message(participant, occasion)
    assert trial.dispatch().sent == 1
    return participant, occasion, message


def reply(trial: Trial, participant: Participant, body: str, *, sid: str | None = None):
    with Session(trial.engine) as session:
        result = receive_sms(
            session,
            trial.vault,
            provider_message_id=sid or next(sids),
            sender=trial.phone(participant),
            body=body,
            now=trial.clock.now(),
        )
        session.commit()
        return result


def conversation(trial: Trial, occasion: Occasion) -> SmsConversation | None:
    with Session(trial.engine) as session:
        return session.exec(
            select(SmsConversation).where(SmsConversation.occasion_id == occasion.id)
        ).first()


def answers(trial: Trial, occasion: Occasion) -> dict[str, float]:
    with Session(trial.engine) as session:
        rows = session.exec(
            select(ItemResponse.item_id, ItemResponse.value)
            .join(Response, ItemResponse.response_id == Response.id)
            .where(Response.occasion_id == occasion.id)
        ).all()
    return dict(rows)


def responses(trial: Trial, occasion: Occasion) -> dict[str, Response]:
    with Session(trial.engine) as session:
        found = session.exec(select(Response).where(Response.occasion_id == occasion.id)).all()
    return {response.instrument_id: response for response in found}


# --- asking ---------------------------------------------------------------------------------------


def test_the_allowed_answers_name_the_ends_of_a_long_scale(trial):
    [(_, who5), (_, swls)] = sms_surveys.sms_instruments(
        Occasion(instruments=["who5", "swls"]), trial.protocol, "en"
    )
    assert allowed_answers(who5.items[0].scale, "en") == (
        "Reply 0-5 (0 = At no time, 5 = All of the time)"
    )
    assert allowed_answers(swls.items[0].scale, "en") == (
        "Reply 1-7 (1 = Strongly disagree, 7 = Strongly agree)"
    )


def test_the_allowed_answers_list_every_label_of_a_short_scale_and_a_step_other_than_one():
    labels = ("Hardly ever", "Some of the time", "Often")
    short = LocalizedScale(1, 3, 1, tuple(LocalizedAnchor(v + 1, x) for v, x in enumerate(labels)))
    assert allowed_answers(short, "en") == (
        "Reply 1-3 (1 = Hardly ever, 2 = Some of the time, 3 = Often)"
    )
    halves = LocalizedScale(0, 2, 0.5, ())
    assert allowed_answers(halves, "en") == "Reply 0-2 in steps of 0.5"
    assert read_answer("1.5", halves) == 1.5
    assert read_answer("1,5", halves) == 1.5
    assert read_answer("1.25", halves) is None


def test_an_occasion_without_wording_for_an_instrument_is_not_an_sms_survey(trial):
    # The example ships no UCLA-3 wording (wording.status: local): the web page must ask it.
    occasion = Occasion(instruments=["who5", "ucla3"])
    assert sms_surveys.sms_instruments(occasion, trial.protocol, "en") is None


def test_an_sms_text_that_names_its_range_is_sent_as_written(trial):
    [(_, view)] = sms_surveys.sms_instruments(
        Occasion(instruments=["momentary_affect"]), trial.protocol, "en"
    )
    question = Question(view, view.items[0], 1, 3, True)
    assert ask(question) == (
        "1/3 How happy do you feel right now? Reply 0 (not at all) to 10 (extremely)."
    )
    third = Question(view, view.items[2], 3, 3, False)
    assert ask(third) == "3/3 How connected to other people do you feel right now? Reply 0-10."


def test_an_occasion_with_an_instrument_unfit_for_sms_is_not_an_sms_survey(trial):
    occasion = Occasion(instruments=["who5", "bpnsfs"])
    assert sms_surveys.sms_instruments(occasion, trial.protocol, "en") is None


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ("3", 3.0),
        (" 3 ", 3.0),
        ("3.", 3.0),
        ("0", 0.0),
        ("5!", 5.0),
        ("6", None),
        ("-1", None),
        ("2.5", None),
        ("three", None),
        ("3 4", None),
        ("3-4", None),
        ("I'd say 4", None),
        ("", None),
    ],
)
def test_a_reply_is_one_allowed_number_and_nothing_else(trial, body, value):
    [(_, view)] = sms_surveys.sms_instruments(Occasion(instruments=["who5"]), trial.protocol, "en")
    assert read_answer(body, view.items[0].scale) == value


# --- starting -------------------------------------------------------------------------------------


def test_the_dispatcher_sends_the_first_question_with_the_link_and_opens_the_conversation(trial):
    participant, occasion, message = surveyed(trial)

    [sms] = trial.fake.messages
    assert sms.body.endswith(WHO5_FIRST)
    assert "Reply STOP to opt out" in sms.body
    assert test_dispatch.link_in(sms.body)  # the web stays open, and the crash check works
    assert trial.row(message).body == sms.body
    started = conversation(trial, occasion)
    assert (started.status, started.instrument_index, started.item_index) == ("active", 0, 0)
    assert started.participant_id == participant.id
    assert started.started_at == trial.clock.now()
    assert started.expires_at == occasion.closes_at


def test_an_occasion_unfit_for_sms_gets_the_plain_link(trial):
    _, occasion, _ = surveyed(trial, instruments=("who5", "bpnsfs"))

    [sms] = trial.fake.messages
    assert "1/" not in sms.body and "Reply 0-5" not in sms.body
    assert conversation(trial, occasion) is None


def test_an_email_invitation_opens_no_conversation(trial):
    participant = trial.enrol()
    occasion = trial.occasion(participant)
    trial.message(participant, occasion, channel="email")
    assert trial.dispatch().sent == 1
    assert conversation(trial, occasion) is None


def test_a_reminder_asks_the_question_the_conversation_waits_for(trial):
    participant, occasion, _ = surveyed(trial)
    reply(trial, participant, "4")
    trial.message(participant, occasion, purpose="reminder", send_after=trial.clock.now())

    trial.clock.advance(hours=1)
    assert trial.dispatch().sent == 1

    reminder = trial.fake.messages[-1]
    assert "reminder" in reminder.body
    assert reminder.body.endswith(
        "2/10 I have felt calm and relaxed. Reply 0-5 (0 = At no time, 5 = All of the time)"
    )
    assert conversation(trial, occasion).last_activity_at == trial.clock.now()


# --- answering ------------------------------------------------------------------------------------


def test_a_whole_occasion_answered_by_text_with_invalid_replies_re_asked_and_not_stored(trial):
    participant, occasion, _ = surveyed(trial)
    reminder = trial.message(
        participant,
        occasion,
        purpose="reminder",
        send_after=trial.clock.now() + timedelta(hours=24),
    )

    first = reply(trial, participant, "7")
    assert first.action == "sms_survey_invalid"
    assert first.reply == "Sorry, please reply with one number from 0 to 5.\n" + WHO5_FIRST
    assert reply(trial, participant, "lots").action == "sms_survey_invalid"
    assert reply(trial, participant, "3 4").action == "sms_survey_invalid"
    assert answers(trial, occasion) == {}
    assert conversation(trial, occasion).invalid_replies == 3

    second = reply(trial, participant, "4")
    assert second.action == "sms_survey_answer"
    assert second.reply.startswith("2/10 I have felt calm and relaxed.")
    assert trial.occasion_status(occasion.id) == "partial"
    assert responses(trial, occasion)["who5"].status == "partial"

    for value in ("3", "2", "5", "1"):
        reply(trial, participant, value)
    so_far = responses(trial, occasion)
    assert (so_far["who5"].status, so_far["who5"].submitted_at) == ("complete", trial.clock.now())
    assert "swls" not in so_far
    assert conversation(trial, occasion).instrument_index == 1
    swls_first = reply(trial, participant, "8")
    assert swls_first.reply.startswith("Sorry, please reply with one number from 1 to 7.\n6/10 ")

    for value in ("7", "6", "5", "4"):
        reply(trial, participant, value)
    last = reply(trial, participant, "1")

    assert last.action == "sms_survey_completed"
    assert "Thank you" in last.reply
    assert answers(trial, occasion) == {
        "who5_1": 4,
        "who5_2": 3,
        "who5_3": 2,
        "who5_4": 5,
        "who5_5": 1,
        "swls_1": 7,
        "swls_2": 6,
        "swls_3": 5,
        "swls_4": 4,
        "swls_5": 1,
    }
    stored = responses(trial, occasion)
    with Session(trial.engine) as session:
        consent_version = version_in_force(session, session.get(Participant, participant.id))
    assert consent_version
    for response in stored.values():
        assert (response.channel, response.status, response.language) == ("sms", "complete", "en")
        assert response.consent_version == consent_version
        expected = trial.protocol.instrument(response.instrument_id).version
        assert response.instrument_version == expected
    done = trial.get(Occasion, occasion.id)
    assert (done.status, done.completed_at) == ("completed", trial.clock.now())
    assert trial.row(reminder).status == "cancelled"
    assert conversation(trial, occasion).status == "completed"
    with Session(trial.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("response.submitted") == 2
    assert actions.count("occasion.completed") == 1

    # After the thank-you, a text is not an answer any more.
    after = reply(trial, participant, "4")
    assert after.action == "not_understood"
    assert len(answers(trial, occasion)) == 10


def test_items_already_answered_on_the_web_are_not_asked_again(trial):
    participant, occasion, _ = surveyed(trial, instruments=("momentary_affect",))
    with Session(trial.engine) as session:
        response = Response(
            occasion_id=occasion.id,
            participant_id=participant.id,
            instrument_id="momentary_affect",
            instrument_version="web",
            channel="web",
        )
        session.add(response)
        session.flush()
        session.add(ItemResponse(response_id=response.id, item_id="ema_calm", value=2))
        session.commit()

    nxt = reply(trial, participant, "1")
    assert nxt.reply.startswith("3/3 ")
    assert reply(trial, participant, "3").action == "sms_survey_completed"
    assert answers(trial, occasion) == {"ema_happy": 1, "ema_calm": 2, "ema_connected": 3}


def test_a_repeated_message_id_is_answered_the_same_and_changes_nothing(trial):
    participant, occasion, _ = surveyed(trial)

    first = reply(trial, participant, "4", sid="SM" + "d" * 32)
    again = reply(trial, participant, "4", sid="SM" + "d" * 32)

    assert again.duplicate and again.reply == first.reply
    assert answers(trial, occasion) == {"who5_1": 4}
    assert conversation(trial, occasion).item_index == 1


# --- ending ---------------------------------------------------------------------------------------


def test_a_reply_after_the_occasion_closes_is_told_the_questionnaire_has_closed(trial):
    participant, occasion, _ = surveyed(trial, window=timedelta(hours=2))
    reply(trial, participant, "4")

    trial.clock.advance(hours=2)
    late = reply(trial, participant, "3")

    assert late.action == "sms_survey_closed"
    assert "this questionnaire has closed" in late.reply
    assert answers(trial, occasion) == {"who5_1": 4}
    ended = conversation(trial, occasion)
    assert (ended.status, ended.ended_at) == ("expired", trial.clock.now())
    assert reply(trial, participant, "3").action == "sms_survey_closed"


def test_an_idle_timeout_ends_a_conversation_before_its_occasion_closes(trial):
    participant, occasion, _ = surveyed(trial)
    policy = ConversationPolicy(idle_timeout=timedelta(hours=2))
    sms_surveys.uninstall()
    try:
        from study.channels import register_inbound_handler, unregister_inbound_handler

        def patient(context):
            return sms_surveys.answer(context, policy)

        register_inbound_handler(patient)
        with Session(trial.engine) as session:
            started = session.get(SmsConversation, conversation(trial, occasion).id)
            started.expires_at = policy.deadline(
                trial.get(Occasion, occasion.id), trial.clock.now()
            )
            session.add(started)
            session.commit()
        trial.clock.advance(hours=1)
        assert reply(trial, participant, "4").action == "sms_survey_answer"
        assert conversation(trial, occasion).expires_at == trial.clock.now() + timedelta(hours=2)
        trial.clock.advance(hours=2)
        assert reply(trial, participant, "4").action == "sms_survey_closed"
    finally:
        unregister_inbound_handler(patient)
        sms_surveys.install()


def test_the_sweep_expires_conversations_past_their_deadline(trial):
    _, occasion, _ = surveyed(trial, window=timedelta(hours=2))
    with Session(trial.engine) as session:
        assert sms_surveys.expire_conversations(session, now=trial.clock.now()) == 0
        session.commit()
    trial.clock.advance(hours=2)
    with Session(trial.engine) as session:
        assert sms_surveys.expire_conversations(session, now=trial.clock.now()) == 1
        session.commit()
    assert conversation(trial, occasion).status == "expired"


def test_every_scheduler_tick_expires_conversations_past_their_deadline(trial, settings):
    from study.scheduler import standard_tasks, tick_once

    expire = [task for task in standard_tasks(settings) if task.name == "sms_surveys.expire"]
    _, occasion, _ = surveyed(trial, window=timedelta(hours=2))
    trial.clock.advance(hours=2)
    outcome = tick_once(trial.engine, trial.clock, expire)
    assert outcome.failed == ()
    assert conversation(trial, occasion).status == "expired"


def test_withdrawal_closes_the_conversation(trial):
    participant, occasion, _ = surveyed(trial)
    with Session(trial.engine) as session:
        withdraw(
            session,
            participant=session.get(Participant, participant.id),
            protocol=trial.protocol,
            now=trial.clock.now(),
            actor="test",
            reason="",
            by="participant",
        )
        session.commit()

    assert reply(trial, participant, "4").action == "sms_survey_closed"
    assert answers(trial, occasion) == {}


def test_stop_during_a_conversation_still_opts_out(trial):
    participant, occasion, _ = surveyed(trial)

    stopped = reply(trial, participant, "STOP")

    assert (stopped.action, stopped.reply) == ("opt_out", None)
    with Session(trial.engine) as session:
        contact = session.exec(
            select(ContactPoint).where(ContactPoint.participant_id == participant.id)
        ).first()
    assert contact.opted_out_at is not None
    assert answers(trial, occasion) == {}
    assert reply(trial, participant, "HELP").action == "help"


def test_a_participant_without_a_conversation_gets_the_default_reply(trial):
    participant = trial.enrol()
    assert reply(trial, participant, "4").action == "not_understood"


def test_a_reply_goes_to_the_conversation_that_asked_last(trial):
    participant, weekly, _ = surveyed(trial)
    trial.clock.advance(hours=1)
    ema = trial.occasion(participant)
    with Session(trial.engine) as session:
        stored = session.get(Occasion, ema.id)
        stored.instruments = ["momentary_affect"]
        session.add(stored)
        session.commit()
    trial.message(participant, ema)
    assert trial.dispatch().sent == 1

    assert reply(trial, participant, "9").action == "sms_survey_answer"
    assert answers(trial, ema) == {"ema_happy": 9}
    assert answers(trial, weekly) == {}


def test_no_pending_message_outlives_a_completed_occasion(trial):
    participant, occasion, _ = surveyed(trial, instruments=("momentary_affect",))
    later = trial.message(
        participant, occasion, purpose="reminder", send_after=trial.clock.now() + timedelta(hours=1)
    )
    for value in ("1", "1", "1"):
        reply(trial, participant, value)
    assert trial.row(later).status == "cancelled"
    with Session(trial.engine) as session:
        pending = session.exec(
            select(OutboundMessage).where(OutboundMessage.status == "pending")
        ).all()
    assert pending == []
