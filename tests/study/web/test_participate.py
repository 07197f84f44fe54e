"""The participant journey over HTTP: every step's validation, CSRF, step order, contacts at
rest, time zones, idempotent enrollment, the portal, withdrawal and allocation concealment."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from study import enrollment
from study.models import (
    Allocation,
    Arm,
    ContactPoint,
    EnrollmentProgress,
    OutboundMessage,
    Participant,
)
from study.protocol import load_protocol
from tests.conftest import csrf_token_from
from tests.study.web.conftest import EXAMPLE

SLUG = "assistant-flourishing-rct"
JOIN = f"/join/{SLUG}"
ELIGIBLE = {"age": "29", "owns_mobile": "yes", "reads_english": "yes", "crisis_care": "no"}
RIGHT = {"allocation_by_chance": "chance", "can_withdraw": "yes", "assistant_is_ai": "ai"}
WHO5 = {f"who5.who5_{i}": "3" for i in range(1, 6)}
DASH = "\N{EN DASH}"  # between a question and its problem in the error summary
PHONE, EMAIL = "+44 7700 900123", "ada.lovelace@example.org"


@pytest.fixture
def db(app, example_study):
    with Session(app.extensions["flourish"].engine, expire_on_commit=False) as session:
        yield session


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.location)
    return response.get_data(as_text=True)


def submit(client, url: str, data: dict, *, form_url: str | None = None):
    """POST `data` with the CSRF token of the form at `form_url` (default: `url`)."""
    token = csrf_token_from(page(client, form_url or url))
    return client.post(url, data={"csrf_token": token, **data})


def text_of(response) -> str:
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def screen(client, answers=ELIGIBLE):
    return submit(client, f"{JOIN}/screening", answers)


def to_signature(client):
    assert screen(client).status_code == 302
    response = submit(client, f"{JOIN}/questions", RIGHT)
    assert response.location == f"{JOIN}/sign"


def to_baseline(client):
    to_signature(client)
    response = submit(client, f"{JOIN}/sign", {"signed_name": "Ada Lovelace"})
    assert response.location == f"{JOIN}/signed"


def to_enroll(client, channel="sms", timezone="Europe/London"):
    to_baseline(client)
    assert submit(client, f"{JOIN}/baseline", WHO5).location == f"{JOIN}/contact"
    response = submit(client, f"{JOIN}/contact", {"channel": channel, "phone": PHONE})
    assert response.location == f"{JOIN}/settings"
    response = submit(client, f"{JOIN}/settings", {"timezone": timezone, "language": "en"})
    assert response.location == f"{JOIN}/join-now"


def enrolled(client):
    to_enroll(client)
    assert submit(client, f"{JOIN}/join-now", {}).location == f"{JOIN}/welcome"


def participant_of(db, client) -> Participant:
    with client.session_transaction() as flask_session:
        code = flask_session["participant"]
    db.expire_all()
    return db.exec(select(Participant).where(Participant.code == code)).one()


# --- study link and screener --------------------------------------------------------------------


def test_the_study_link_opens_the_welcome_page_with_the_public_title_only(client, example_study):
    body = page(client, JOIN)
    assert "Everyday Life and AI Assistants Study" in body
    assert example_study.title not in body  # the researchers' title names the arms
    assert f'href="{JOIN}/screening"' in body


def test_an_unknown_study_link_says_so_kindly(client, example_study):
    response = client.get("/join/no-such-study")
    assert response.status_code == 404
    assert "There is no study at this address" in text_of(response)


def test_the_screener_explains_each_problem_and_links_to_its_field(client, db):
    response = screen(client, {"age": "about thirty", "owns_mobile": "yes"})

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'class="error-summary" role="alert"' in html
    assert f'<a href="#age">How old are you (in years)? {DASH} Enter a number using digits' in html
    assert 'href="#reads_english"' in html and 'href="#crisis_care"' in html
    assert 'aria-describedby="age-error" aria-invalid="true"' in html
    assert 'value="about thirty"' in html  # what they typed is kept
    assert db.exec(select(Participant)).all() == []


def test_a_person_who_is_not_eligible_sees_a_kind_end_page_and_nothing_is_kept(
    client, db, example_study
):
    response = screen(client, {**ELIGIBLE, "crisis_care": "yes"})

    assert response.location == f"{JOIN}/not-eligible"
    body = text_of(client.get(response.location))
    assert "Thank you for your interest" in body
    assert "If you are finding things difficult" in body
    assert "We have not kept any of your answers" in body
    assert db.exec(select(Participant)).all() == []
    assert db.exec(select(EnrollmentProgress)).all() == []
    assert enrollment.ineligible_count(db, example_study) == 1
    with client.session_transaction() as flask_session:
        assert "participant" not in flask_session


def test_a_form_without_its_csrf_token_is_refused(client, db):
    page(client, f"{JOIN}/screening")
    response = client.post(f"{JOIN}/screening", data=ELIGIBLE)
    assert response.status_code == 400
    assert db.exec(select(Participant)).all() == []


def test_going_back_to_the_screener_does_not_create_a_second_participant(client, db):
    screen(client)
    response = client.get(f"{JOIN}/screening")
    assert response.location == f"{JOIN}/information"
    assert len(db.exec(select(Participant)).all()) == 1


# --- invitation codes ---------------------------------------------------------------------------


def test_an_invitation_code_works_once(client, app, db, example_study):
    (code,) = enrollment.issue_invitations(db, example_study, 1, actor="test")
    db.commit()

    assert client.get(f"{JOIN}?code=WRONGCODE").status_code == 404
    assert "Thank you for following your invitation" in page(client, f"{JOIN}?code={code}")
    assert screen(client).status_code == 302

    again = app.test_client().get(f"{JOIN}?code={code}")
    assert again.status_code == 404
    assert "already been used" in text_of(again)


# --- steps in order -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["sign", "baseline", "contact", "settings", "join-now", "welcome"])
def test_no_step_can_be_reached_before_the_ones_it_needs(client, db, step):
    screen(client)
    response = client.get(f"{JOIN}/{step}")
    assert response.status_code == 302
    assert response.location == f"{JOIN}/information"


def test_enrolling_by_url_before_consent_allocates_nobody(client, db):
    screen(client)
    token = csrf_token_from(page(client, f"{JOIN}/questions"))
    response = client.post(f"{JOIN}/join-now", data={"csrf_token": token})
    assert response.location == f"{JOIN}/information"
    assert db.exec(select(Allocation)).all() == []


def test_without_a_session_every_step_leads_back_to_the_study_link(client, example_study):
    response = client.get(f"{JOIN}/baseline")
    assert response.location == JOIN


# --- eConsent -----------------------------------------------------------------------------------


def test_the_information_is_shown_section_by_section(client, db):
    screen(client)
    first = page(client, f"{JOIN}/information")
    assert "part 1 of" in first and f'href="{JOIN}/information/2"' in first
    last_number = int(re.search(r"part 1 of (\d+)", first).group(1))
    last = page(client, f"{JOIN}/information/{last_number}")
    assert f'href="{JOIN}/questions"' in last
    assert client.get(f"{JOIN}/information/{last_number + 1}").status_code == 404


def test_wrong_comprehension_answers_are_explained_and_can_be_retried(client, db):
    screen(client)
    response = submit(client, f"{JOIN}/questions", {**RIGHT, "can_withdraw": "after_week_12"})

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "1 answer is not right yet" in body
    assert f'href="{JOIN}/information"' in body  # re-read the information
    assert '<a href="#can_withdraw">' in body
    assert 'value="chance" checked' in body  # the right answers are kept
    assert 'value="after_week_12" checked' not in body

    response = submit(client, f"{JOIN}/questions", RIGHT)
    assert response.location == f"{JOIN}/sign"
    assert participant_of(db, client).status == "screening"


def test_the_signature_needs_a_typed_name_and_optional_items_default_from_the_protocol(client, db):
    to_signature(client)
    form = page(client, f"{JOIN}/sign")
    assert 'name="store_chat_content" value="yes" checked' not in form  # default: false
    assert "Date:" in form and "2 March 2026" in form

    response = submit(client, f"{JOIN}/sign", {"signed_name": "  "})
    assert response.status_code == 200
    assert 'href="#signed_name">Type your full name to sign' in response.get_data(as_text=True)

    response = submit(
        client, f"{JOIN}/sign", {"signed_name": "Ada Lovelace", "store_chat_content": "yes"}
    )
    assert response.location == f"{JOIN}/signed"
    participant = participant_of(db, client)
    assert participant.status == "consented"
    options = enrollment.active_consent(db, participant).options
    assert options == {"store_chat_content": True, "ema": False}


def test_the_signed_copy_downloads_as_html_with_name_date_and_version(client, db):
    to_baseline(client)
    assert f'href="{JOIN}/consent-copy"' in page(client, f"{JOIN}/signed")
    response = client.get(f"{JOIN}/consent-copy")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    copy = response.get_data(as_text=True)
    assert "Ada Lovelace" in copy and "version 1.0" in copy and "2 March 2026" in copy


def test_a_withdraw_link_is_on_every_page_after_consent_but_not_before(client, db):
    screen(client)
    assert "Withdraw from the study" not in page(client, f"{JOIN}/questions")
    submit(client, f"{JOIN}/questions", RIGHT)
    submit(client, f"{JOIN}/sign", {"signed_name": "Ada Lovelace"})
    for url in (f"{JOIN}/signed", f"{JOIN}/baseline", f"{JOIN}/information/2"):
        assert 'href="/p/withdraw">Withdraw from the study' in page(client, url)


# --- baseline, contacts, time zone --------------------------------------------------------------


def test_the_who5_items_are_asked_and_out_of_range_answers_refused(client, db):
    to_baseline(client)
    form = page(client, f"{JOIN}/baseline")
    assert "I have felt cheerful and in good spirits." in form
    assert form.count("<fieldset") == 5 and form.count("<legend>") == 5
    assert "All of the time" in form and "At no time" in form

    response = submit(client, f"{JOIN}/baseline", {**WHO5, "who5.who5_3": "9"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<a href="#who5-who5_3">I have felt active and vigorous. {DASH} Choose one' in body
    assert participant_of(db, client) and db.exec(select(EnrollmentProgress)).one().baseline == {}

    response = submit(client, f"{JOIN}/baseline", {"who5.who5_1": "5"})
    assert response.get_data(as_text=True).count("Choose an answer.") >= 4


def test_contact_details_are_required_by_channel_and_stored_only_encrypted(client, app, db):
    to_baseline(client)
    submit(client, f"{JOIN}/baseline", WHO5)

    response = submit(client, f"{JOIN}/contact", {"channel": "both", "phone": "07700 900123"})
    body = response.get_data(as_text=True)
    assert (
        f'href="#phone">Mobile number {DASH} Enter your mobile number in international form' in body
    )
    assert f'href="#email">Email address {DASH} Enter your email address' in body
    response = submit(client, f"{JOIN}/contact", {"channel": "", "phone": PHONE})
    assert 'href="#channel"' in response.get_data(as_text=True)

    response = submit(
        client, f"{JOIN}/contact", {"channel": "both", "phone": PHONE, "email": EMAIL}
    )
    assert response.location == f"{JOIN}/settings"
    with app.extensions["flourish"].engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM contact_point")).all()
    assert len(rows) == 2
    stored = repr(rows)
    for plaintext in (PHONE, "+447700900123", "7700900123", EMAIL, "ada.lovelace"):
        assert plaintext not in stored
    vault = app.extensions["flourish"].pii
    values = {p.kind: vault.decrypt(p.value_encrypted) for p in db.exec(select(ContactPoint))}
    assert values == {"sms": "+447700900123", "email": EMAIL}
    # Going back shows the participant their own details again, to correct them.
    assert f'value="{EMAIL}"' in page(client, f"{JOIN}/contact")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "Europe/Atlantis", "UTC; DROP"])
def test_an_unknown_time_zone_is_refused(client, db, zone):
    to_enroll(client)
    response = submit(client, f"{JOIN}/settings", {"timezone": zone, "language": "en"})
    assert response.status_code == 200
    assert f'href="#timezone">Time zone {DASH} Choose your time zone' in response.get_data(
        as_text=True
    )
    assert participant_of(db, client).timezone == "Europe/London"


def test_the_time_zone_list_offers_every_iana_zone_for_the_browser_guess(client, db):
    to_baseline(client)
    submit(client, f"{JOIN}/baseline", WHO5)
    submit(client, f"{JOIN}/contact", {"channel": "sms", "phone": PHONE})
    form = page(client, f"{JOIN}/settings")
    assert "data-timezone-guess" in form
    assert '<option value="" selected>Choose your time zone</option>' in form
    assert '<option value="America/Argentina/Buenos_Aires">' in form
    assert '<script src="/static/participate.js" defer></script>' in form
    response = submit(client, f"{JOIN}/settings", {"timezone": "Asia/Kolkata", "language": "en"})
    assert response.location == f"{JOIN}/join-now"
    assert participant_of(db, client).timezone == "Asia/Kolkata"


# --- enrollment ---------------------------------------------------------------------------------


def test_a_double_submit_of_enrollment_allocates_once(client, db):
    to_enroll(client)
    token = csrf_token_from(page(client, f"{JOIN}/join-now"))
    first = client.post(f"{JOIN}/join-now", data={"csrf_token": token})
    second = client.post(f"{JOIN}/join-now", data={"csrf_token": token})

    assert first.location == second.location == f"{JOIN}/welcome"
    participant = participant_of(db, client)
    assert participant.status == "enrolled"
    assert len(db.exec(select(Allocation)).all()) == 1


def test_the_welcome_page_tells_the_participant_about_their_own_group_only(client, db):
    enrolled(client)
    body = text_of(client.get(f"{JOIN}/welcome"))
    participant = participant_of(db, client)
    allocation = db.exec(select(Allocation)).one()
    own = db.get(Arm, allocation.arm_id)
    protocol = load_protocol(EXAMPLE)
    told = " ".join(protocol.model.arm(own.key).participant_description["en"].split())

    assert told in body
    # Researchers' names and descriptions of the arms never reach participants.
    for arm in protocol.model.arms:
        assert arm.name not in body
        assert " ".join(arm.description.split()) not in body
    assert "Every week, starting 7 days after you join" in body
    assert "We will send you each invitation by text message." in body
    assert "Withdraw from the study" in body and "reply STOP" in body
    assert participant.code in body


# --- concealment --------------------------------------------------------------------------------


def _normalised(html: str, participant: Participant) -> str:
    html = html.replace(participant.code, "P-CODE")
    html = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "CSRF", html)
    return re.sub(r"/p/[A-Za-z0-9_\-.]+", "/p/TOKEN", html)


def test_no_participant_page_depends_on_how_many_were_allocated_before(app, db):
    """Pages are the same for the first participant and for a later one in the same arm, so no
    page can reveal the allocation count, a sequence number or the state of a block."""
    seen: dict[str, dict[str, str]] = {}
    first_arm = None
    for _ in range(12):
        client = app.test_client()
        enrolled(client)
        participant = participant_of(db, client)
        arm = enrollment.arm_of(db, participant).key
        pages = {
            url: _normalised(page(client, url), participant)
            for url in (f"{JOIN}/welcome", "/p/", "/p/withdraw", f"{JOIN}/information/4")
        }
        if first_arm is None:
            first_arm, seen[arm] = arm, pages
        elif arm == first_arm:
            assert pages == seen[arm]
            allocation = db.exec(
                select(Allocation).where(Allocation.participant_id == participant.id)
            ).one()
            assert allocation.sequence_number > 1
            for html in pages.values():
                assert "sequence" not in html.lower() and "block" not in html.lower()
                assert allocation.stratum not in html
            return
    pytest.fail("no two of 12 participants shared an arm")


# --- portal and withdrawal ----------------------------------------------------------------------


def portal_path_of(client) -> str:
    match = re.search(r'href="(/p/[A-Za-z0-9_\-.]+)"', page(client, f"{JOIN}/welcome"))
    assert match
    return match.group(1)


def test_the_portal_link_opens_the_study_page_from_another_device(app, client, db):
    enrolled(client)
    path = portal_path_of(client)

    other = app.test_client()
    response = other.get(path)
    assert response.location == "/p/"
    body = text_of(other.get("/p/"))
    assert "Your study page" in body and "Your group" in body
    assert other.get("/p/consent-copy").status_code == 200

    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert app.test_client().get(tampered).status_code == 404
    assert app.test_client().get("/p/").status_code == 403


def test_withdrawing_from_the_portal_cancels_pending_messages(client, db, clock):
    enrolled(client)
    participant = participant_of(db, client)
    for hours in (2, 26):
        db.add(
            OutboundMessage(
                participant_id=participant.id,
                channel="sms",
                purpose="invitation",
                send_after=clock.now() + timedelta(hours=hours),
            )
        )
    db.commit()

    confirm = page(client, "/p/withdraw")
    assert "is kept and used" in confirm  # the example protocol keeps data on withdrawal
    assert client.post("/p/withdraw", data={}).status_code == 400  # CSRF
    response = submit(client, "/p/withdraw", {"reason": "moving abroad"})
    assert response.location == "/p/"
    body = text_of(client.get("/p/"))
    assert "You have left the study" in body

    db.expire_all()
    assert {m.status for m in db.exec(select(OutboundMessage))} == {"cancelled"}
    assert participant_of(db, client).status == "withdrawn"
    # Nothing further can be done in the journey.
    assert client.get(f"{JOIN}/contact").location == "/p/"


def test_participant_pages_are_never_cached(client, example_study):
    assert client.get(JOIN).headers["Cache-Control"] == "no-store"


def test_an_enrolled_participant_re_consents_from_the_portal_after_an_amendment(
    client, db, tmp_path
):
    import shutil

    from study.protocol import load_protocol
    from study.protocol.registry import register_protocol

    enrolled(client)
    examples = Path(__file__).parents[3] / "examples"
    shutil.copytree(examples, tmp_path / "examples")
    protocol_file = tmp_path / "examples/protocols/assistant-flourishing-rct.yaml"
    protocol_file.write_text(protocol_file.read_text().replace('version: "1.0"', 'version: "1.1"'))
    register_protocol(db, load_protocol(protocol_file), actor="test")
    db.commit()

    assert "read it and confirm your consent" in page(client, "/p/")
    response = submit(client, "/p/reconsent", {"signed_name": ""})
    assert 'href="#signed_name"' in response.get_data(as_text=True)
    response = submit(client, "/p/reconsent", {"signed_name": "Ada Lovelace"})
    assert response.location == "/p/"

    participant = participant_of(db, client)
    assert enrollment.active_consent(db, participant).document_version == "1.1"
    assert participant.status == "enrolled"
    assert "confirm your consent" not in page(client, "/p/")
    assert client.get("/p/reconsent").location == "/p/"
