"""Changing a participant's time zone on the web: "My time zone" in the participant portal and
the coordinator's participant page. Both re-plan only occasions still to come, refuse unknown
zones without changing anything, and need their CSRF token; only coordinators and above may
move someone else."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from study.models import AuditEvent, Occasion, Participant
from study.protocol import load_protocol
from study.protocol.registry import current_version
from study.schedule import materialise, schedule_seed
from tests.conftest import TEST_PASSWORD, csrf_token_from
from tests.study.web.conftest import EXAMPLE
from tests.study.web.test_participate import enrolled, page, participant_of, submit, text_of


@pytest.fixture
def db(app, example_study):
    with Session(app.extensions["flourish"].engine, expire_on_commit=False) as session:
        yield session


def schedule(db, participant) -> list[tuple[int, str, int, str, datetime]]:
    db.expire_all()
    return [
        (o.id, o.schedule_key, o.wave, o.status, o.due_at)
        for o in db.exec(
            select(Occasion)
            .where(Occasion.participant_id == participant.id)
            .order_by(col(Occasion.due_at), col(Occasion.id))
        )
    ]


def live(rows):
    return [row for row in rows if row[3] != "cancelled"]


def events(db, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)))


def at_local(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


# --- the participant portal ---------------------------------------------------------------------


def test_my_time_zone_shows_the_zone_in_force_and_every_zone_with_a_device_guess(client, db):
    enrolled(client)
    portal = text_of(client.get("/p/"))
    assert "My time zone" in portal and "Europe/London" in portal

    form = page(client, "/p/timezone")

    assert "<strong data-current-timezone>Europe/London</strong>" in form
    assert "data-timezone-guess" in form  # participate.js suggests the device's zone
    assert '<option value="Europe/London">Europe/London (your time zone now)</option>' in form
    assert '<option value="America/Argentina/Buenos_Aires">' in form
    assert 'name="csrf_token"' in form


def test_moving_from_the_portal_replans_only_questionnaires_to_come(client, db, clock):
    enrolled(client)  # Monday 2 March, 09:00 UTC: the baseline is due, and open, now
    participant = participant_of(db, client)
    before = schedule(db, participant)
    assert [(key, wave) for _, key, wave, _, _ in before] == [("baseline", 0), ("weekly", 1)]
    clock.advance(hours=1)

    response = submit(client, "/p/timezone", {"timezone": "America/New_York"})

    assert response.status_code == 302
    assert response.location == "/p/timezone?saved=1"
    assert "Saved." in text_of(client.get(response.location))
    assert participant_of(db, client).timezone == "America/New_York"
    after = live(schedule(db, participant))
    assert after[0] == before[0]  # the open baseline: same row, same instant
    (_, key, wave, status, due) = after[1]
    assert (key, wave, status) == ("weekly", 1, "scheduled") and after[1][0] != before[1][0]
    # 19:00 on the second Monday, now in New York (on summer time since 8 March).
    assert at_local(due, "America/New_York") == "2026-03-09 19:00 EDT"
    assert at_local(before[1][4], "Europe/London") == "2026-03-09 19:00 GMT"
    (moved,) = events(db, "participant.timezone")
    assert moved.actor == f"participant:{participant.code}"
    (replanned,) = events(db, "schedule.replan")
    assert replanned.details["reason"] == "timezone"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "UTC; DROP"])
def test_the_portal_refuses_an_unknown_zone_clearly_and_changes_nothing(client, db, zone):
    enrolled(client)
    participant = participant_of(db, client)
    before = schedule(db, participant)

    response = submit(client, "/p/timezone", {"timezone": zone})

    assert response.status_code == 422
    assert "Time zone \N{EN DASH} Choose your time zone from the list" in text_of(response)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert participant_of(db, client).timezone == "Europe/London"
    assert schedule(db, participant) == before
    assert events(db, "participant.timezone") == []


def test_the_portal_change_needs_its_csrf_token_and_a_participant(app, client, db):
    enrolled(client)
    participant = participant_of(db, client)

    assert client.post("/p/timezone", data={"timezone": "Asia/Kolkata"}).status_code == 400
    assert app.test_client().get("/p/timezone").status_code == 403
    assert participant_of(db, client).timezone == "Europe/London"
    assert schedule(db, participant)[-1][3] == "scheduled"


# --- the coordinator's participant page ---------------------------------------------------------


@pytest.fixture
def scheduled(app, example_study, clock):
    """An enrolled participant in Europe/London with their first two weeks written."""
    services = app.extensions["flourish"]
    with Session(services.engine, expire_on_commit=False) as session:
        participant = Participant(
            study_id=example_study.id,
            code="P-TZ0001",
            status="enrolled",
            timezone="Europe/London",
            preferred_channel="sms",
            enrolled_at=clock.now(),
            created_at=clock.now(),
        )
        session.add(participant)
        session.flush()
        version = current_version(session, example_study.id)
        materialise(
            session,
            participant,
            load_protocol(EXAMPLE),
            version.id,
            now=clock.now(),
            seed=schedule_seed(services.settings.secret_key, example_study.slug),
        )
        session.commit()
    clock.advance(hours=1)
    return participant


@pytest.fixture
def signed_in(app, make_researcher):
    def sign_in(role: str):
        client = app.test_client()
        researcher = make_researcher(role)
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login",
            data={"email": researcher.email, "password": TEST_PASSWORD, "csrf_token": token},
        )
        assert response.status_code == 302
        client.actor = f"researcher:{researcher.email}"
        return client

    return sign_in


def detail_url(study, participant) -> str:
    return f"/studies/{study.slug}/participants/{participant.code}"


def post_zone(client, study, participant, zone: str, *, token: bool = True):
    url = detail_url(study, participant)
    data = {"timezone": zone}
    if token:
        data["csrf_token"] = csrf_token_from(client.get(url).get_data(as_text=True))
    return client.post(f"{url}/timezone", data=data)


@pytest.mark.parametrize("role", ["coordinator", "investigator", "admin"])
def test_a_coordinator_moves_a_participant_and_only_the_future_is_replanned(
    signed_in, db, example_study, scheduled, role
):
    client = signed_in(role)
    form = client.get(detail_url(example_study, scheduled)).get_data(as_text=True)
    assert '<h2 id="timezone">Time zone</h2>' in form
    assert '<option selected value="Europe/London">' in form
    before = schedule(db, scheduled)

    response = post_zone(client, example_study, scheduled, "Australia/Sydney")

    assert response.status_code == 302
    shown = text_of(client.get(response.location))
    assert "P-TZ0001 is now in Australia/Sydney (was Europe/London)" in shown
    assert db.get(Participant, scheduled.id).timezone == "Australia/Sydney"
    after = live(schedule(db, scheduled))
    assert after[0] == before[0]  # the baseline, due at enrollment: past and open
    assert [(key, wave) for _, key, wave, _, _ in after[1:]] == [("weekly", 1), ("weekly", 2)]
    assert [at_local(row[4], "Australia/Sydney") for row in after[1:]] == [
        "2026-03-09 19:00 AEDT",
        "2026-03-16 19:00 AEDT",
    ]
    (moved,) = events(db, "participant.timezone")
    assert moved.actor == client.actor
    (replanned,) = events(db, "schedule.replan")
    assert (replanned.actor, replanned.details["reason"]) == (client.actor, "timezone")


def test_an_analyst_can_neither_see_nor_use_the_time_zone_change(
    signed_in, db, example_study, scheduled
):
    client = signed_in("analyst")
    detail = client.get(detail_url(example_study, scheduled)).get_data(as_text=True)
    assert 'id="timezone"' not in detail
    before = schedule(db, scheduled)

    response = post_zone(client, example_study, scheduled, "Asia/Kolkata")

    assert response.status_code == 403
    assert db.get(Participant, scheduled.id).timezone == "Europe/London"
    assert schedule(db, scheduled) == before
    assert events(db, "participant.timezone") == []


def test_the_coordinator_is_told_clearly_about_an_unknown_zone_and_nothing_changes(
    signed_in, db, example_study, scheduled
):
    client = signed_in("coordinator")
    before = schedule(db, scheduled)

    response = post_zone(client, example_study, scheduled, "Europe/Atlantis")

    assert response.status_code == 400
    assert "'Europe/Atlantis' is not a time zone known here" in text_of(response).replace(
        "&#39;", "'"
    )
    assert db.get(Participant, scheduled.id).timezone == "Europe/London"
    assert schedule(db, scheduled) == before
    assert events(db, "participant.timezone") == []


def test_the_coordinator_change_needs_its_csrf_token(signed_in, db, example_study, scheduled):
    client = signed_in("coordinator")

    response = post_zone(client, example_study, scheduled, "Asia/Kolkata", token=False)

    assert response.status_code == 400
    assert db.get(Participant, scheduled.id).timezone == "Europe/London"
    assert events(db, "participant.timezone") == []


def test_no_time_zone_change_is_offered_after_withdrawal(signed_in, db, example_study, scheduled):
    withdrawn = db.get(Participant, scheduled.id)
    withdrawn.status, withdrawn.withdrawn_at = "withdrawn", datetime(2026, 3, 2, 10, tzinfo=UTC)
    db.add(withdrawn)
    db.commit()
    client = signed_in("coordinator")

    assert 'id="timezone"' not in client.get(detail_url(example_study, scheduled)).get_data(
        as_text=True
    )
    response = post_zone(client, example_study, scheduled, "Asia/Kolkata")
    assert response.status_code == 409
    assert "is withdrawn: there is no schedule to move" in text_of(response)
    assert db.get(Participant, scheduled.id).timezone == "Europe/London"
