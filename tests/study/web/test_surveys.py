"""Web surveys over HTTP: the link, its refusals, validation, save and resume, one submission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from study.models import ItemResponse, Occasion, OutboundMessage, Participant, Response
from study.schedule.links import survey_link, survey_token
from tests.conftest import csrf_token_from
from tests.study.test_surveys import (
    add_occasion,
    affect_form,
    enrolled_participant,
    register_example,
    who5_form,
)


@pytest.fixture
def db(app):
    with Session(app.extensions["flourish"].engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def participant(db, clock):
    return enrolled_participant(db, register_example(db), clock.now())


@pytest.fixture
def occasion(db, participant, clock):
    return add_occasion(db, participant, clock.now())


def path_of(settings, occasion_id: int) -> str:
    return survey_link(settings, occasion_id).removeprefix(settings.public_url)


def post_page(client, path, number, form):
    token = csrf_token_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "page": str(number), **form})


def count(db, model, *where) -> int:
    db.expire_all()
    return db.exec(select(func.count()).select_from(model).where(*where)).one()


def test_a_tampered_or_unknown_link_is_a_friendly_404_that_reveals_nothing(
    client, settings, occasion
):
    path = path_of(settings, occasion.id)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    unknown = "/s/" + survey_token(settings, occasion.id + 1000)
    pages = [client.get(tampered), client.get(unknown), client.get("/s/nonsense")]
    assert [page.status_code for page in pages] == [404, 404, 404]
    bodies = {page.get_data(as_text=True) for page in pages}
    assert len(bodies) == 1  # the same page whether or not the occasion exists
    assert "This link does not work" in bodies.pop()


def test_the_survey_page_is_an_accessible_form_with_progress(client, settings, occasion):
    html = client.get(path_of(settings, occasion.id)).get_data(as_text=True)
    assert "Page 1 of 2" in html
    assert (
        "<fieldset" in html and "<legend>I have felt cheerful and in good spirits.</legend>" in html
    )
    assert '<label for="who5-who5_1">All of the time</label>' in html
    assert "Please think about the last two weeks." in html
    assert 'name="csrf_token"' in html
    assert 'lang="en"' in html


def test_a_rating_is_a_row_of_numbers_with_labelled_ends(client, settings, occasion):
    path = path_of(settings, occasion.id)
    post_page(client, path, 1, who5_form())
    html = client.get(path).get_data(as_text=True)
    assert "Page 2 of 2" in html and 'class="rating-row"' in html
    assert html.count('name="momentary_affect.ema_happy"') == 11
    assert "0 = Not at all" in html and "10 = Extremely" in html
    assert "Submit my answers" in html


def test_a_post_without_the_csrf_token_is_refused(client, settings, occasion, db):
    response = client.post(path_of(settings, occasion.id), data={"page": "1", **who5_form()})
    assert response.status_code == 400
    assert count(db, ItemResponse) == 0


def test_an_answer_of_9_on_a_0_to_5_scale_is_explained_beside_the_field_and_not_stored(
    client, settings, occasion, db
):
    response = post_page(
        client, path_of(settings, occasion.id), 1, who5_form(**{"who5.who5_3": "9"})
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in html
    assert 'id="who5-who5_3-error"' in html
    assert "Choose one of the answers shown (from 0 to 5)." in html
    assert 'aria-invalid="true"' in html
    assert count(db, Response) == 0 and count(db, ItemResponse) == 0


def test_before_it_opens_the_page_says_when(client, settings, participant, clock, db):
    occasion = add_occasion(db, participant, clock.now(), due_in=timedelta(days=2))
    html = client.get(path_of(settings, occasion.id)).get_data(as_text=True)
    assert "This questionnaire is not open yet" in html
    assert "Wednesday 4 March 2026 at 09:00" in html  # Europe/London, due in two days
    assert "<fieldset" not in html


def test_after_it_closes_the_page_names_the_closing_and_the_next_one(
    client, settings, participant, clock, db
):
    closed = add_occasion(db, participant, clock.now(), due_in=timedelta(days=-3))
    add_occasion(db, participant, clock.now(), due_in=timedelta(days=4, hours=10), wave=2)
    path = path_of(settings, closed.id)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 410
    assert "This questionnaire closed on Sunday 1 March 2026 at 09:00" in html
    assert "Your next one is on Friday 6 March 2026 at 19:00" in html
    response = client.post(path, data={"page": "1", **who5_form()})
    assert response.status_code in (400, 410)
    assert count(db, ItemResponse) == 0


def test_a_withdrawn_participant_sees_that_they_have_left_and_no_questions(
    client, settings, occasion, participant, db
):
    participant = db.get(Participant, participant.id)
    participant.status = "withdrawn"
    db.add(participant)
    db.commit()
    html = client.get(path_of(settings, occasion.id)).get_data(as_text=True)
    assert "You have left the study" in html
    assert "<fieldset" not in html and "<form" not in html


def test_missing_wording_shows_no_half_questionnaire_but_a_note_for_the_team(
    client, settings, participant, clock, db
):
    occasion = add_occasion(db, participant, clock.now(), ["who5", "ucla3"])
    page = client.get(path_of(settings, occasion.id))
    html = page.get_data(as_text=True)
    assert page.status_code == 503
    assert "This questionnaire cannot be shown yet" in html
    assert "ucla3.wording.yaml" in html
    assert "<fieldset" not in html


def test_leaving_and_coming_back_resumes_at_the_first_unanswered_page(
    app, settings, occasion, db, clock
):
    path = path_of(settings, occasion.id)
    first_visit = app.test_client()
    saved = post_page(first_visit, path, 1, who5_form("2"))
    assert saved.status_code == 303 and saved.headers["Location"].endswith("page=2")
    db.expire_all()
    assert db.get(Occasion, occasion.id).status == "partial"

    clock.advance(timedelta(hours=5))
    later = app.test_client()  # another browser, the same link
    html = later.get(path).get_data(as_text=True)
    assert "Page 2 of 2" in html
    back = later.get(path + "?page=1").get_data(as_text=True)
    assert back.count(" checked") == 5 and 'value="2" checked' in back


def test_pages_cannot_be_skipped(client, settings, occasion):
    html = client.get(path_of(settings, occasion.id) + "?page=2").get_data(as_text=True)
    assert "Page 1 of 2" in html


def test_a_double_submit_stores_one_set_and_shows_the_same_thank_you(
    app, settings, occasion, db, clock
):
    path = path_of(settings, occasion.id)
    tab_one, tab_two = app.test_client(), app.test_client()
    post_page(tab_one, path, 1, who5_form())
    token_two = csrf_token_from(tab_two.get(path).get_data(as_text=True))  # both on page 2
    token_one = csrf_token_from(tab_one.get(path).get_data(as_text=True))

    first = tab_one.post(path, data={"csrf_token": token_one, "page": "2", **affect_form("6")})
    items_after_first = count(db, ItemResponse)
    second = tab_two.post(path, data={"csrf_token": token_two, "page": "2", **affect_form("1")})

    assert first.status_code == second.status_code == 303
    assert count(db, Response, Response.status == "complete") == 2
    assert count(db, Response) == 2
    assert count(db, ItemResponse) == items_after_first == 8
    values = db.exec(select(ItemResponse.value).where(ItemResponse.item_id == "ema_calm")).all()
    assert values == [6.0]
    thanks_one = tab_one.get(path).get_data(as_text=True)
    thanks_two = tab_two.get(path).get_data(as_text=True)
    assert "Your answers have been sent" in thanks_one
    assert thanks_one.replace(token_one, "") == thanks_two.replace(token_two, "")


def test_completion_cancels_reminders_and_the_link_then_shows_thanks(
    client, settings, occasion, db
):
    path = path_of(settings, occasion.id)
    post_page(client, path, 1, who5_form())
    post_page(client, path, 2, affect_form())
    db.expire_all()
    statuses = db.exec(
        select(OutboundMessage.status).where(OutboundMessage.purpose == "reminder")
    ).all()
    assert statuses == ["cancelled"]
    responses = db.exec(select(Response)).all()
    assert {(r.consent_version, r.channel, r.status) for r in responses} == {
        ("1.0", "web", "complete")
    }
    html = client.get(path).get_data(as_text=True)
    assert "Thank you" in html and "<fieldset" not in html
