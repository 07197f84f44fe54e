"""Web surveys, the domain: opening an occasion, saving pages, resuming, submitting once.
On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from study import surveys
from study.models import (
    AuditEvent,
    Consent,
    ItemResponse,
    Occasion,
    OutboundMessage,
    Participant,
    Response,
)
from study.protocol import load_protocol
from study.protocol.registry import register_protocol

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
MESSAGES = {"choose_answer": "Choose an answer.", "not_allowed": "From {low} to {high}."}


def messages(_language: str) -> dict[str, str]:
    return MESSAGES


# --- a study with one participant and an occasion -------------------------------------------------


def register_example(session: Session):
    registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
    session.commit()
    return registration


def enrolled_participant(
    session: Session, registration, now, *, code="P-SURVEY01", language="en", tz="Europe/London"
) -> Participant:
    """An enrolled participant with consent version 1.0 signed yesterday."""
    participant = Participant(
        study_id=registration.study.id,
        code=code,
        status="enrolled",
        protocol_version_id=registration.version.id,
        timezone=tz,
        language=language,
        preferred_channel="email",
        created_at=now - timedelta(days=2),
        enrolled_at=now - timedelta(days=1),
    )
    session.add(participant)
    session.flush()
    session.add(
        Consent(
            participant_id=participant.id,
            document_version="1.0",
            document_hash="0" * 64,
            options={},
            signature_encrypted=b"signature",
            signed_at=now - timedelta(days=1),
        )
    )
    session.commit()
    return participant


def add_occasion(
    session: Session,
    participant: Participant,
    now,
    instruments=("who5", "momentary_affect"),
    *,
    due_in=timedelta(hours=-1),
    open_for=timedelta(hours=48),
    wave=1,
    reminders=1,
) -> Occasion:
    """An occasion (due `due_in` from now) with an invitation already sent and pending reminders."""
    occasion = Occasion(
        participant_id=participant.id,
        protocol_version_id=participant.protocol_version_id,
        schedule_key="weekly",
        wave=wave,
        kind="wave",
        instruments=list(instruments),
        due_at=now + due_in,
        closes_at=now + due_in + open_for,
        status="sent",
    )
    session.add(occasion)
    session.flush()
    for n in range(reminders):
        session.add(
            OutboundMessage(
                participant_id=participant.id,
                occasion_id=occasion.id,
                channel="email",
                purpose="reminder",
                send_after=occasion.due_at + timedelta(hours=24 * (n + 1)),
                expires_at=occasion.closes_at,
            )
        )
    session.commit()
    return occasion


def who5_form(value="3", **overrides) -> dict[str, str]:
    form = {f"who5.who5_{n}": value for n in range(1, 6)}
    form.update(overrides)
    return form


def affect_form(value="7") -> dict[str, str]:
    items = ("ema_happy", "ema_calm", "ema_connected")
    return {f"momentary_affect.{item}": value for item in items}


def count(session: Session, model, *where) -> int:
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


@pytest.fixture
def study(session, clock):
    registration = register_example(session)
    participant = enrolled_participant(session, registration, clock.now())
    return registration, participant


@pytest.fixture
def occasion(session, study, clock):
    return add_occasion(session, study[1], clock.now())


def save(session, occasion, number, form, clock):
    outcome = surveys.save_page(
        session, occasion.id, number, form, now=clock.now(), messages=messages
    )
    session.commit()
    return outcome


# --- opening ------------------------------------------------------------------------------------


def test_opening_shows_the_instruments_in_order_and_marks_the_occasion_opened_once(
    session, occasion, clock
):
    survey = surveys.open_survey(session, occasion.id, now=clock.now())
    session.commit()
    assert [page.instrument.id for page in survey.pages] == ["who5", "momentary_affect"]
    assert survey.pages[0].items[0].text == "I have felt cheerful and in good spirits."
    assert survey.pages[0].instrument.reference_period == "the last two weeks"
    first_opened = clock.now()
    assert (occasion.status, occasion.opened_at) == ("opened", first_opened)

    clock.advance(timedelta(minutes=30))
    surveys.open_survey(session, occasion.id, now=clock.now())
    session.commit()
    session.refresh(occasion)
    assert occasion.opened_at == first_opened


def test_a_long_instrument_is_split_into_even_pages_of_at_most_eight_items(session, study, clock):
    occasion = add_occasion(session, study[1], clock.now(), ["perma_profiler"])
    survey = surveys.open_survey(session, occasion.id, now=clock.now())
    sizes = [len(page.items) for page in survey.pages]
    assert max(sizes) <= surveys.ITEMS_PER_PAGE
    assert sum(sizes) == len(survey.pages[0].definition.items)
    assert max(sizes) - min(sizes) <= 1
    assert [(page.part, page.parts) for page in survey.pages] == [
        (part, len(sizes)) for part in range(1, len(sizes) + 1)
    ]


def test_an_unknown_occasion_is_not_found(session, study, clock):
    with pytest.raises(surveys.SurveyNotFound):
        surveys.open_survey(session, 987654, now=clock.now())


def test_before_it_opens_nothing_is_shown_and_the_due_time_is_given(session, study, clock):
    occasion = add_occasion(session, study[1], clock.now(), due_in=timedelta(hours=5))
    with pytest.raises(surveys.NotOpenYet) as refused:
        surveys.open_survey(session, occasion.id, now=clock.now())
    assert refused.value.opens_at == occasion.due_at
    session.rollback()
    session.refresh(occasion)
    assert occasion.status == "sent" and occasion.opened_at is None


def test_a_link_a_few_minutes_early_still_opens(session, study, clock):
    occasion = add_occasion(session, study[1], clock.now(), due_in=timedelta(minutes=5))
    assert surveys.open_survey(session, occasion.id, now=clock.now()).pages


def test_after_it_closes_the_next_occasion_is_named_and_nothing_is_accepted(session, study, clock):
    closed = add_occasion(session, study[1], clock.now(), due_in=timedelta(days=-3))
    upcoming = add_occasion(session, study[1], clock.now(), due_in=timedelta(days=4), wave=2)
    with pytest.raises(surveys.SurveyClosed) as refused:
        surveys.save_page(session, closed.id, 1, who5_form(), now=clock.now(), messages=messages)
    assert refused.value.closed_at == closed.closes_at
    assert refused.value.next_due == upcoming.due_at
    session.rollback()
    assert count(session, Response) == 0


def test_a_withdrawn_participant_is_asked_nothing(session, study, occasion, clock):
    participant = study[1]
    participant.status = "withdrawn"
    session.add(participant)
    session.commit()
    with pytest.raises(surveys.ParticipantLeft):
        surveys.open_survey(session, occasion.id, now=clock.now())


def test_without_consent_in_force_nothing_is_collected(session, study, occasion, clock):
    consent = session.exec(select(Consent)).one()
    consent.withdrawn_at = clock.now() - timedelta(hours=2)
    session.add(consent)
    session.commit()
    with pytest.raises(surveys.NoConsentInForce):
        surveys.open_survey(session, occasion.id, now=clock.now())


def test_missing_local_wording_refuses_the_whole_survey_with_a_message_for_the_team(
    session, study, clock
):
    occasion = add_occasion(session, study[1], clock.now(), ["who5", "ucla3"])
    with pytest.raises(surveys.SurveyMisconfigured) as refused:
        surveys.open_survey(session, occasion.id, now=clock.now())
    (problem,) = refused.value.problems
    assert "ucla3" in problem and "ucla3.wording.yaml" in problem


def test_a_language_without_text_falls_back_and_the_response_records_the_language_shown(
    session, study, clock
):
    registration, _ = study
    participant = enrolled_participant(
        session, registration, clock.now(), code="P-SURVEY02", language="de-AT"
    )
    occasion = add_occasion(session, participant, clock.now(), ["who5"])
    survey = surveys.open_survey(session, occasion.id, now=clock.now())
    assert survey.pages[0].items[0].text == "I have felt cheerful and in good spirits."
    assert {item.language for item in survey.pages[0].items} == {"en"}
    save(session, occasion, 1, who5_form(), clock)
    response = session.exec(select(Response)).one()
    assert response.language == "en"


# --- saving, resuming, submitting ---------------------------------------------------------------


def test_an_out_of_range_answer_is_explained_and_nothing_is_stored(session, occasion, clock):
    outcome = save(session, occasion, 1, who5_form(**{"who5.who5_2": "9"}), clock)
    assert outcome.problems == {"who5.who5_2": "From 0 to 5."}
    assert not outcome.saved
    assert count(session, Response) == 0 and count(session, ItemResponse) == 0


def test_every_item_on_a_page_must_be_answered(session, occasion, clock):
    form = who5_form()
    del form["who5.who5_4"]
    outcome = save(session, occasion, 1, form, clock)
    assert outcome.problems == {"who5.who5_4": "Choose an answer."}
    assert count(session, ItemResponse) == 0


def test_fields_of_another_instrument_are_ignored_not_stored(session, occasion, clock):
    save(session, occasion, 1, who5_form() | {"momentary_affect.ema_happy": "4"}, clock)
    stored = session.exec(select(ItemResponse.item_id)).all()
    assert sorted(stored) == [f"who5_{n}" for n in range(1, 6)]


def test_a_saved_page_is_a_partial_response_and_the_link_resumes_after_it(session, occasion, clock):
    outcome = save(session, occasion, 1, who5_form("4"), clock)
    assert outcome.saved and not outcome.submitted
    response = session.exec(select(Response)).one()
    assert (response.instrument_id, response.status, response.channel) == ("who5", "partial", "web")
    assert response.consent_version == "1.0"
    assert response.instrument_version == "1998, 5 items"
    session.refresh(occasion)
    assert occasion.status == "partial"

    clock.advance(timedelta(hours=3))
    survey = surveys.open_survey(session, occasion.id, now=clock.now())
    assert survey.resume_page() == 2
    assert survey.answers["who5"] == {f"who5_{n}": 4.0 for n in range(1, 6)}


def test_going_back_and_changing_an_answer_updates_the_row(session, occasion, clock):
    save(session, occasion, 1, who5_form("4"), clock)
    save(session, occasion, 1, who5_form("4", **{"who5.who5_1": "1"}), clock)
    assert count(session, ItemResponse) == 5
    first = session.exec(select(ItemResponse).where(ItemResponse.item_id == "who5_1")).one()
    assert first.value == 1.0


def test_the_last_page_submits_completes_everything_and_cancels_reminders(session, occasion, clock):
    save(session, occasion, 1, who5_form(), clock)
    clock.advance(timedelta(minutes=2))
    outcome = save(session, occasion, 2, affect_form(), clock)
    assert outcome.submitted
    responses = session.exec(select(Response).order_by(col(Response.id))).all()
    assert [(r.instrument_id, r.status, r.submitted_at) for r in responses] == [
        ("who5", "complete", clock.now()),
        ("momentary_affect", "complete", clock.now()),
    ]
    session.refresh(occasion)
    assert (occasion.status, occasion.completed_at) == ("completed", clock.now())
    reminders = session.exec(select(OutboundMessage.status)).all()
    assert reminders == ["cancelled"]


def test_submission_is_audited_without_any_answer(session, occasion, clock):
    save(session, occasion, 1, who5_form("5"), clock)
    save(session, occasion, 2, affect_form("9"), clock)
    (event,) = session.exec(select(AuditEvent).where(AuditEvent.action == "survey.submit")).all()
    assert event.actor == "participant:P-SURVEY01"
    assert event.entity_id == str(occasion.id)
    assert event.details["instruments"] == ["who5", "momentary_affect"]
    assert event.details["items_answered"] == 8
    assert "answers" not in event.details and "values" not in event.details


def test_a_second_submit_changes_nothing(session, occasion, clock):
    save(session, occasion, 1, who5_form(), clock)
    save(session, occasion, 2, affect_form("7"), clock)
    submitted_at = clock.now()
    clock.advance(timedelta(seconds=1))
    again = save(session, occasion, 2, affect_form("2"), clock)
    assert again.survey.completed and not again.saved
    assert count(session, Response, Response.status == "complete") == 2
    assert count(session, ItemResponse) == 8
    assert set(session.exec(select(ItemResponse.value).where(
        ItemResponse.item_id == "ema_happy")).all()) == {7.0}  # fmt: skip
    assert {r.submitted_at for r in session.exec(select(Response))} == {submitted_at}
    assert count(session, AuditEvent, AuditEvent.action == "survey.submit") == 1


def test_the_last_page_sent_before_an_earlier_one_leads_back_to_it(session, occasion, clock):
    outcome = save(session, occasion, 2, affect_form(), clock)
    assert outcome.saved and not outcome.submitted and outcome.next_page == 1


def test_a_completed_occasion_still_opens_for_its_thank_you_page_after_closing(
    session, occasion, clock
):
    save(session, occasion, 1, who5_form(), clock)
    save(session, occasion, 2, affect_form(), clock)
    clock.advance(timedelta(days=5))
    assert surveys.open_survey(session, occasion.id, now=clock.now()).completed
