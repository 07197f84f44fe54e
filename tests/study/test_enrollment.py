"""The participant journey as domain functions, without HTTP: screen, consent, baseline,
contacts, preferences, enroll (exactly once), withdraw."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from study import enrollment
from study.enrollment import StepRefused
from study.models import (
    Allocation,
    AuditEvent,
    ContactPoint,
    EnrollmentProgress,
    OutboundMessage,
    Participant,
)
from study.pii import PiiVault
from study.protocol import load_protocol
from study.protocol.registry import register_protocol

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
ELIGIBLE = {"age": "29", "owns_mobile": "yes", "reads_english": "yes", "crisis_care": "no"}
RIGHT = {"allocation_by_chance": "chance", "can_withdraw": "yes", "assistant_is_ai": "ai"}
WHO5_LOW = {f"who5_{i}": "2" for i in range(1, 6)}  # raw 10: below the cut point of 13
WHO5_HIGH = {f"who5_{i}": "4" for i in range(1, 6)}  # raw 20
ENVIRON = {"FLOURISH_ALLOCATION_SEED": "a-test-seed-that-is-long-enough"}


@pytest.fixture
def vault() -> PiiVault:
    return PiiVault(Fernet.generate_key().decode())


@pytest.fixture
def opened(session):
    register_protocol(session, load_protocol(EXAMPLE), actor="test")
    session.commit()
    return enrollment.open_study(session, "assistant-flourishing-rct")


def screened(session, opened, clock, answers=ELIGIBLE):
    outcome = enrollment.screen(session, opened, answers, now=clock.now())
    session.commit()
    return outcome


def through_consent(session, vault, opened, clock, answers=ELIGIBLE):
    journey = screened(session, opened, clock, answers).journey
    assert enrollment.check_comprehension(session, journey, RIGHT, now=clock.now()) == []
    enrollment.record_consent(
        session, vault, journey, signed_name="Ada Lovelace", options={}, now=clock.now()
    )
    session.commit()
    return journey


def ready_to_enroll(session, vault, opened, clock, who5=WHO5_LOW, answers=ELIGIBLE):
    journey = through_consent(session, vault, opened, clock, answers)
    who5 = enrollment.load_instrument(journey.protocol, "who5")
    assert enrollment.record_baseline(session, journey, who5, WHO5_LOW, now=clock.now()) == {}
    problems = enrollment.record_contacts(
        session, vault, journey, channel="sms", phone="+44 7700 900123", email="", now=clock.now()
    )
    assert problems == {}
    problems = enrollment.record_preferences(
        session, journey, timezone="Europe/London", language="en", now=clock.now()
    )
    assert problems == {}
    session.commit()
    return journey


# --- screening ----------------------------------------------------------------------------------


def test_an_eligible_person_becomes_a_participant_with_a_pseudonymous_code(session, opened, clock):
    outcome = screened(session, opened, clock)

    assert outcome.eligible and not outcome.problems
    participant = outcome.journey.participant
    assert participant.status == "screening"
    assert participant.code.startswith("P-") and len(participant.code) == 10
    assert set(participant.code[2:]) <= set(enrollment.CODE_ALPHABET)
    assert participant.protocol_version_id == opened.version.id
    progress = session.exec(select(EnrollmentProgress)).one()
    assert progress.screening_answers == {
        "age": 29,
        "owns_mobile": True,
        "reads_english": True,
        "crisis_care": False,
    }
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "participant.screened_eligible")
    ).one()
    assert event.actor == f"participant:{participant.code}"


@pytest.mark.parametrize(
    "change", [{"age": "17"}, {"owns_mobile": "no"}, {"crisis_care": "yes"}], ids=str
)
def test_an_ineligible_person_leaves_only_a_count(session, opened, clock, change):
    outcome = screened(session, opened, clock, {**ELIGIBLE, **change})

    assert not outcome.eligible and outcome.journey is None
    assert outcome.answers == {}
    assert session.exec(select(Participant)).all() == []
    assert session.exec(select(EnrollmentProgress)).all() == []
    assert enrollment.ineligible_count(session, opened.study) == 1
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "screening.ineligible")
    ).one()
    # Nothing in the event says who, or what they answered.
    assert event.actor == "anonymous" and event.details == {}
    assert event.after_hash == "" and event.before_hash == ""


def test_screening_answers_are_validated_and_nothing_is_stored_until_they_are(
    session, opened, clock
):
    outcome = screened(session, opened, clock, {"age": "twenty", "owns_mobile": "maybe"})

    assert outcome.problems == {
        "age": "Enter a number using digits, for example 34.",
        "owns_mobile": "Choose yes or no.",
        "reads_english": "Choose an answer.",
        "crisis_care": "Choose an answer.",
    }
    assert session.exec(select(Participant)).all() == []
    assert enrollment.ineligible_count(session, opened.study) == 0


def test_participant_codes_are_unique(session, opened, clock):
    codes = {screened(session, opened, clock).journey.participant.code for _ in range(20)}
    assert len(codes) == 20


# --- invitations --------------------------------------------------------------------------------


def test_an_invitation_code_is_single_use_and_only_its_hash_is_stored(session, opened, clock):
    (code,) = enrollment.issue_invitations(session, opened.study, 1, actor="test")
    session.commit()
    invitation = enrollment.find_invitation(session, opened.study, code.lower())
    assert code not in invitation.code_hash

    outcome = enrollment.screen(session, opened, ELIGIBLE, now=clock.now(), invitation=invitation)
    session.commit()

    assert invitation.participant_id == outcome.journey.participant.id
    with pytest.raises(enrollment.InvitationInvalid):
        enrollment.find_invitation(session, opened.study, code)
    with pytest.raises(enrollment.InvitationInvalid):
        enrollment.find_invitation(session, opened.study, "NOT-A-REAL-CODE-AT-ALL")


# --- consent ------------------------------------------------------------------------------------


def test_signing_needs_the_comprehension_questions_answered_correctly(
    session, vault, opened, clock
):
    journey = screened(session, opened, clock).journey
    with pytest.raises(StepRefused) as refused:
        enrollment.record_consent(
            session, vault, journey, signed_name="Ada", options={}, now=clock.now()
        )
    assert refused.value.step == "consent"

    wrong = enrollment.check_comprehension(
        session, journey, {**RIGHT, "allocation_by_chance": "researcher"}, now=clock.now()
    )
    assert wrong == ["allocation_by_chance"]
    assert journey.next_step() == "consent"
    assert enrollment.check_comprehension(session, journey, RIGHT, now=clock.now()) == []
    assert journey.progress.comprehension_attempts == 2
    assert journey.next_step() == "sign"

    with pytest.raises(ValueError, match="Type your full name"):
        enrollment.record_consent(
            session, vault, journey, signed_name="   ", options={}, now=clock.now()
        )
    signed = enrollment.record_consent(
        session,
        vault,
        journey,
        signed_name="Ada  Lovelace",
        options={"store_chat_content": True},
        now=clock.now(),
    )
    assert journey.participant.status == "consented"
    assert signed.options == {"store_chat_content": True, "ema": False}
    assert vault.decrypt(signed.signature_encrypted) == "Ada Lovelace"
    assert journey.next_step() == "baseline"


# --- baseline -----------------------------------------------------------------------------------


def test_the_who5_baseline_is_scored_and_out_of_range_answers_are_refused(
    session, vault, opened, clock
):
    journey = through_consent(session, vault, opened, clock)
    who5 = enrollment.load_instrument(journey.protocol, "who5")

    problems = enrollment.record_baseline(
        session, journey, who5, {**WHO5_HIGH, "who5_2": "6", "who5_5": ""}, now=clock.now()
    )
    assert set(problems) == {"who5_2", "who5_5"}
    assert journey.progress.baseline_at is None

    assert enrollment.record_baseline(session, journey, who5, WHO5_HIGH, now=clock.now()) == {}
    assert enrollment.baseline_scores(journey.progress)[("who5", "raw")] == 20
    assert journey.progress.baseline["who5"]["answers"]["who5_1"] == 4
    assert journey.next_step() == "contacts"


# --- contacts and preferences -------------------------------------------------------------------


def test_contact_details_are_validated_per_channel_and_stored_encrypted(
    session, vault, opened, clock
):
    journey = through_consent(session, vault, opened, clock)
    who5 = enrollment.load_instrument(journey.protocol, "who5")
    enrollment.record_baseline(session, journey, who5, WHO5_LOW, now=clock.now())

    problems = enrollment.record_contacts(
        session, vault, journey, channel="both", phone="07700 900123", email="", now=clock.now()
    )
    assert set(problems) == {"phone", "email"}
    assert "international form" in problems["phone"]
    assert enrollment.record_contacts(
        session, vault, journey, channel="pigeon", phone="", email="", now=clock.now()
    ) == {"channel": "Choose how we should contact you."}

    problems = enrollment.record_contacts(
        session,
        vault,
        journey,
        channel="both",
        phone="+44 (0)7700-900123".replace("(0)", ""),
        email="Ada@Example.ORG",
        now=clock.now(),
    )
    assert problems == {}
    session.commit()
    points = {p.kind: p for p in session.exec(select(ContactPoint))}
    assert vault.decrypt(points["sms"].value_encrypted) == "+447700900123"
    assert vault.decrypt(points["email"].value_encrypted) == "Ada@example.org"
    assert points["sms"].lookup_hash == vault.lookup_hash("sms", "+447700900123")
    assert journey.participant.preferred_channel == "both"

    # Going back and choosing SMS only removes the email address.
    enrollment.record_contacts(
        session, vault, journey, channel="sms", phone="+447700900123", email="", now=clock.now()
    )
    session.commit()
    assert [p.kind for p in session.exec(select(ContactPoint))] == ["sms"]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "europe/london", "../etc/passwd"])
def test_an_unknown_time_zone_is_refused(session, vault, opened, clock, zone):
    journey = ready_to_enroll(session, vault, opened, clock)
    problems = enrollment.record_preferences(
        session, journey, timezone=zone, language="de", now=clock.now()
    )
    assert set(problems) == {"timezone", "language"}
    assert journey.participant.timezone == "Europe/London"


# --- steps in order -----------------------------------------------------------------------------


def test_no_step_can_be_skipped(session, vault, opened, clock):
    journey = screened(session, opened, clock).journey
    who5 = enrollment.load_instrument(journey.protocol, "who5")
    env = {"now": clock.now()}
    attempts = [
        lambda: enrollment.record_baseline(session, journey, who5, WHO5_LOW, **env),
        lambda: enrollment.record_contacts(
            session, vault, journey, channel="sms", phone="+447700900123", email="", **env
        ),
        lambda: enrollment.record_preferences(
            session, journey, timezone="UTC", language="en", **env
        ),
        lambda: enrollment.enroll(session, journey, environ=ENVIRON, **env),
    ]
    for attempt in attempts:
        with pytest.raises(StepRefused) as refused:
            attempt()
        assert refused.value.step == "consent"
    assert session.exec(select(Allocation)).all() == []


# --- enrollment ---------------------------------------------------------------------------------


def test_enrollment_allocates_exactly_once_even_when_called_twice(session, vault, opened, clock):
    journey = ready_to_enroll(session, vault, opened, clock)
    clock.advance(minutes=5)

    first = enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
    session.commit()
    again = enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
    session.commit()

    assert again.id == first.id
    assert len(session.exec(select(Allocation)).all()) == 1
    participant = session.get(Participant, journey.participant.id)
    assert participant.status == "enrolled"
    assert participant.enrolled_at == clock.now()
    assert participant.protocol_version_id == opened.version.id
    enrolls = session.exec(select(AuditEvent).where(AuditEvent.action == "participant.enroll"))
    assert len(enrolls.all()) == 1


def test_enrollment_from_a_second_session_does_not_allocate_again(
    engine, session, vault, opened, clock
):
    journey = ready_to_enroll(session, vault, opened, clock)
    first = enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
    session.commit()
    with Session(engine) as other:
        stale = enrollment.load_journey(other, journey.participant.code)
        assert enrollment.enroll(other, stale, now=clock.now(), environ=ENVIRON).id == first.id


@pytest.mark.parametrize(
    ("who5", "age", "expected"),
    [
        (WHO5_LOW, "29", {"wellbeing": "low", "age_band": "under_35"}),
        (WHO5_HIGH, "35", {"wellbeing": "high", "age_band": "age_35_plus"}),
    ],
)
def test_strata_come_from_the_who5_baseline_and_the_screening_age(
    session, vault, opened, clock, who5, age, expected
):
    journey = through_consent(session, vault, opened, clock, {**ELIGIBLE, "age": age})
    instrument = enrollment.load_instrument(journey.protocol, "who5")
    enrollment.record_baseline(session, journey, instrument, who5, now=clock.now())
    enrollment.record_contacts(
        session, vault, journey, channel="email", phone="", email="a@b.org", now=clock.now()
    )
    enrollment.record_preferences(
        session, journey, timezone="America/New_York", language="en", now=clock.now()
    )
    allocation = enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)

    assert journey.participant.strata == expected
    assert all(level in allocation.stratum for level in expected.values())


def test_an_amended_consent_document_must_be_signed_before_enrolling(
    session, vault, opened, clock, tmp_path
):
    journey = ready_to_enroll(session, vault, opened, clock)
    amended = _amended_protocol(tmp_path, consent_version="1.1")
    register_protocol(session, amended, actor="test")
    session.commit()
    journey = enrollment.load_journey(session, journey.participant.code)

    assert journey.next_step() == "sign"
    with pytest.raises(StepRefused) as refused:
        enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
    assert refused.value.step == "sign"

    enrollment.record_consent(
        session, vault, journey, signed_name="Ada Lovelace", options={}, now=clock.now()
    )
    assert journey.next_step() == "enroll"
    enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
    assert journey.participant.protocol_version_id != opened.version.id
    assert journey.active_consent.document_version == "1.1"


# --- withdrawal ---------------------------------------------------------------------------------


def test_withdrawal_cancels_every_pending_message(session, vault, opened, clock):
    journey = ready_to_enroll(session, vault, opened, clock)
    enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
    for hours in (1, 24, 48):
        session.add(
            OutboundMessage(
                participant_id=journey.participant.id,
                channel="sms",
                purpose="invitation",
                send_after=clock.now() + timedelta(hours=hours),
            )
        )
    session.commit()

    enrollment.withdraw(session, journey, now=clock.now(), reason="  too busy  ")
    session.commit()

    statuses = {m.status for m in session.exec(select(OutboundMessage))}
    assert statuses == {"cancelled"}
    assert journey.participant.status == "withdrawn"
    assert journey.next_step() == "withdrawn"


# --- what happens next --------------------------------------------------------------------------


def test_the_schedule_is_summarised_in_plain_language(opened):
    lines = enrollment.schedule_summary(opened.protocol, "sms")
    assert lines[0] == "Straight after you join: 8 short questionnaires, open for 7 days."
    assert lines[1].startswith("Every week, starting 7 days after you join, 12 times")
    assert "at 19:00 your time; you have 48 hours to answer" in lines[1]
    assert lines[-2] == "We will send you each invitation by text message."
    assert lines[-1] == "We never send messages between 21:30 and 08:00 your time."


def _amended_protocol(tmp_path, *, consent_version: str):
    import shutil

    root = EXAMPLE.parents[1]
    copy = tmp_path / "examples"
    shutil.copytree(root, copy)
    path = copy / "protocols" / EXAMPLE.name
    text = path.read_text().replace('version: "1.0"', f'version: "{consent_version}"')
    path.write_text(text)
    consent_file = copy / "consent" / "assistant-flourishing-rct-consent-v1.md"
    consent_file.write_text(consent_file.read_text() + "\nAmended.\n")
    return load_protocol(path)
