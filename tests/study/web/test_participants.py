"""Researcher pages about participants: who sees what, withdrawal, export and erasure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from consent import sign
from study.models import (
    Allocation,
    Arm,
    AuditEvent,
    ContactPoint,
    Occasion,
    OutboundMessage,
    Participant,
)
from study.protocol import load_protocol
from study.protocol.registry import current_version, register_protocol
from tests.conftest import TEST_PASSWORD, csrf_token_from
from tests.study.web.conftest import EXAMPLE

PHONE = "+447700900318"
EMAIL = "olwen.brackley@example.org"
SIGNED_NAME = "Olwen Brackley"


@pytest.fixture
def services(app):
    return app.extensions["flourish"]


@pytest.fixture
def enrolled(services, example_study, clock):
    """An enrolled, allocated participant with contact details, a consent and pending mail."""
    vault = services.pii
    with Session(services.engine, expire_on_commit=False) as session:
        participant = Participant(study_id=example_study.id, code="P-WEB001", status="screening")
        session.add(participant)
        session.flush()
        for kind, value in (("sms", PHONE), ("email", EMAIL)):
            session.add(
                ContactPoint(
                    participant_id=participant.id,
                    kind=kind,
                    value_encrypted=vault.encrypt(value),
                    lookup_hash=vault.lookup_hash(kind, value),
                )
            )
        sign(
            session,
            vault,
            participant=participant,
            protocol=load_protocol(EXAMPLE),
            signed_name=SIGNED_NAME,
            options={"store_chat_content": False},
            now=clock.now(),
            actor="participant:P-WEB001",
        )
        participant.status = "enrolled"
        participant.enrolled_at = clock.now()
        arm = session.exec(select(Arm).where(Arm.key == "reflective")).one()
        session.add(
            Allocation(
                participant_id=participant.id,
                arm_id=arm.id,
                scheme="permuted_blocks",
                sequence_number=1,
            )
        )
        session.flush()
        version_id = current_version(session, example_study.id).id
        occasion = Occasion(
            participant_id=participant.id,
            protocol_version_id=version_id,
            schedule_key="weekly",
            wave=1,
            kind="wave",
            instruments=["who5"],
            due_at=clock.now(),
            closes_at=clock.now(),
        )
        session.add(occasion)
        session.flush()
        session.add(
            OutboundMessage(
                participant_id=participant.id,
                occasion_id=occasion.id,
                channel="sms",
                purpose="invitation",
                body="Week 1 questions",
                send_after=clock.now(),
            )
        )
        session.commit()
        return participant


@pytest.fixture
def signed_in(app, make_researcher):
    """A fresh client signed in with `role` (so one test can compare roles)."""

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


def _url(study, suffix: str = "") -> str:
    return f"/studies/{study.slug}/participants/{suffix}"


def _events(services, action: str) -> list[AuditEvent]:
    with Session(services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def _reload(services, participant) -> Participant:
    with Session(services.engine) as session:
        return session.get(Participant, participant.id)


# --- who sees what -------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client, example_study, enrolled):
    for path in (_url(example_study), _url(example_study, enrolled.code)):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_list_shows_pseudonymous_facts_to_every_role(signed_in, example_study, enrolled):
    page = signed_in("analyst").get(_url(example_study)).get_data(as_text=True)

    assert "P-WEB001" in page and "enrolled" in page
    assert "2026-03-02" in page  # enrolled date
    assert "<td>1.0</td>" in page  # consent version
    assert PHONE not in page and EMAIL not in page


def test_analysts_work_blind_while_coordinators_see_the_arm(signed_in, example_study, enrolled):
    for role, sees in (("analyst", False), ("coordinator", True), ("investigator", True)):
        client = signed_in(role)
        for path in (_url(example_study), _url(example_study, enrolled.code)):
            page = client.get(path).get_data(as_text=True)
            assert ("<code>reflective</code>" in page) is sees, (role, path)


def test_once_the_study_is_unblinded_analysts_see_the_arm_too(
    signed_in, services, example_study, enrolled, clock
):
    from study.blinding import unblind

    client = signed_in("analyst")
    assert "<code>reflective</code>" not in client.get(_url(example_study)).get_data(as_text=True)
    with Session(services.engine) as session:
        unblind(
            session,
            example_study.id,
            actor="researcher:pi@example.org",
            reason="primary analysis done",
            now=clock.now(),
        )
        session.commit()
    for path in (_url(example_study), _url(example_study, enrolled.code)):
        assert "<code>reflective</code>" in client.get(path).get_data(as_text=True), path


def test_analysts_cannot_see_contact_details(signed_in, services, example_study, enrolled):
    client = signed_in("analyst")

    page = client.get(_url(example_study, enrolled.code)).get_data(as_text=True)
    assert PHONE not in page and EMAIL not in page and SIGNED_NAME not in page
    assert "Show contact details" not in page
    assert client.get(_url(example_study, enrolled.code) + "?contacts=1").status_code == 403
    assert client.get(_url(example_study) + "?contacts=1").status_code == 403
    assert _events(services, "participant.view_contacts") == []


def test_a_coordinator_sees_contact_details_on_request_and_the_view_is_audited(
    signed_in, services, example_study, enrolled
):
    client = signed_in("coordinator")
    plain = client.get(_url(example_study, enrolled.code)).get_data(as_text=True)
    assert PHONE not in plain and "Show contact details" in plain
    assert _events(services, "participant.view_contacts") == []

    page = client.get(_url(example_study, enrolled.code) + "?contacts=1").get_data(as_text=True)

    assert PHONE in page and EMAIL in page and SIGNED_NAME in page
    [event] = _events(services, "participant.view_contacts")
    assert event.actor == client.actor
    assert event.details == {"participants": ["P-WEB001"]}


def test_contact_details_on_the_list_are_audited_too(signed_in, services, example_study, enrolled):
    client = signed_in("coordinator")

    page = client.get(_url(example_study) + "?contacts=1").get_data(as_text=True)

    assert PHONE in page
    [event] = _events(services, "participant.view_contacts")
    assert event.entity_type == "study" and event.details["participants"] == ["P-WEB001"]


def test_the_list_flags_who_must_reconsent_after_an_amendment(
    signed_in, services, example_study, enrolled, tmp_path
):
    copy = tmp_path / "examples"
    shutil.copytree(Path(EXAMPLE).parents[1], copy)
    source = copy / "protocols" / Path(EXAMPLE).name
    source.write_text(source.read_text().replace('version: "1.0"', 'version: "2.0"', 1))
    client = signed_in("coordinator")
    before = client.get(_url(example_study) + "?reconsent=1").get_data(as_text=True)
    assert "P-WEB001" not in before

    with Session(services.engine) as session:
        register_protocol(session, load_protocol(source), actor="test")
        session.commit()

    after = client.get(_url(example_study) + "?reconsent=1").get_data(as_text=True)
    assert "P-WEB001" in after and "<strong>yes</strong>" in after
    detail = client.get(_url(example_study, enrolled.code)).get_data(as_text=True)
    assert "Must re-consent" in detail


def test_an_unknown_study_or_participant_is_not_found(signed_in, example_study):
    client = signed_in("admin")
    assert client.get("/studies/nope/participants/").status_code == 404
    assert client.get(_url(example_study, "P-NOBODY")).status_code == 404


# --- withdrawal ---------------------------------------------------------------------------------


def _token(client, study, participant) -> str:
    return csrf_token_from(client.get(_url(study, participant.code)).get_data(as_text=True))


def test_a_coordinator_withdraws_a_participant_and_pending_messages_stop(
    signed_in, services, example_study, enrolled
):
    client = signed_in("coordinator")
    token = _token(client, example_study, enrolled)

    response = client.post(
        _url(example_study, f"{enrolled.code}/withdraw"),
        data={"csrf_token": token, "reason": "Asked by phone", "confirm": "y"},
    )

    assert response.status_code == 302
    participant = _reload(services, enrolled)
    assert participant.status == "withdrawn" and participant.withdrawal_reason == "Asked by phone"
    with Session(services.engine) as session:
        assert session.exec(select(OutboundMessage.status)).all() == ["cancelled"]
        assert session.exec(select(Occasion.status)).all() == ["cancelled"]
    [event] = _events(services, "participant.withdraw")
    assert event.actor == client.actor and event.details["by"] == "coordinator"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 pending message(s)" in page


def test_withdrawal_needs_the_csrf_token(signed_in, services, example_study, enrolled):
    client = signed_in("coordinator")

    response = client.post(_url(example_study, f"{enrolled.code}/withdraw"), data={"confirm": "y"})

    assert response.status_code == 400
    assert _reload(services, enrolled).status == "enrolled"


def test_withdrawal_needs_explicit_confirmation(signed_in, services, example_study, enrolled):
    client = signed_in("coordinator")
    token = _token(client, example_study, enrolled)

    response = client.post(
        _url(example_study, f"{enrolled.code}/withdraw"), data={"csrf_token": token}
    )

    assert response.status_code == 400
    assert "Tick the box to confirm" in response.get_data(as_text=True)
    assert _reload(services, enrolled).status == "enrolled"


def test_analysts_cannot_withdraw(signed_in, services, example_study, enrolled):
    client = signed_in("analyst")
    token = _token(client, example_study, enrolled)
    assert "Withdraw P-WEB001" not in client.get(_url(example_study, enrolled.code)).get_data(
        as_text=True
    )

    response = client.post(
        _url(example_study, f"{enrolled.code}/withdraw"),
        data={"csrf_token": token, "confirm": "y"},
    )

    assert response.status_code == 403
    assert _reload(services, enrolled).status == "enrolled"


# --- export and erasure ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["investigator", "admin"])
def test_investigators_export_everything_held_as_json(
    signed_in, services, example_study, enrolled, role
):
    client = signed_in(role)
    token = _token(client, example_study, enrolled)

    response = client.post(
        _url(example_study, f"{enrolled.code}/export"), data={"csrf_token": token}
    )

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert {c["value"] for c in data["contact_points"]} == {PHONE, EMAIL}
    assert data["consents"][0]["signature"] == SIGNED_NAME
    [event] = _events(services, "participant.export")
    assert event.actor == client.actor


@pytest.mark.parametrize("role", ["analyst", "coordinator"])
def test_analysts_and_coordinators_cannot_export_or_erase(
    signed_in, services, example_study, enrolled, role
):
    client = signed_in(role)
    token = _token(client, example_study, enrolled)
    page = client.get(_url(example_study, enrolled.code)).get_data(as_text=True)
    assert "Export (JSON)" not in page and "Erase personal data" not in page

    export = client.post(_url(example_study, f"{enrolled.code}/export"), data={"csrf_token": token})
    erase = client.post(
        _url(example_study, f"{enrolled.code}/erase"),
        data={"csrf_token": token, "confirm_code": enrolled.code},
    )

    assert (export.status_code, erase.status_code) == (403, 403)
    assert _events(services, "participant.export") == []
    with Session(services.engine) as session:
        assert len(session.exec(select(ContactPoint)).all()) == 2


def test_export_and_erasure_need_the_csrf_token(signed_in, services, example_study, enrolled):
    client = signed_in("investigator")

    export = client.post(_url(example_study, f"{enrolled.code}/export"))
    erase = client.post(
        _url(example_study, f"{enrolled.code}/erase"), data={"confirm_code": enrolled.code}
    )

    assert (export.status_code, erase.status_code) == (400, 400)
    with Session(services.engine) as session:
        assert len(session.exec(select(ContactPoint)).all()) == 2


def test_erasure_needs_the_participant_code_typed_exactly(
    signed_in, services, example_study, enrolled
):
    client = signed_in("investigator")
    token = _token(client, example_study, enrolled)

    response = client.post(
        _url(example_study, f"{enrolled.code}/erase"),
        data={"csrf_token": token, "confirm_code": "P-WEB002"},
    )

    assert response.status_code == 400
    assert "Type P-WEB001 exactly" in response.get_data(as_text=True)
    with Session(services.engine) as session:
        assert len(session.exec(select(ContactPoint)).all()) == 2


def test_erasing_someone_enrolled_withdraws_them_first_then_erases(
    signed_in, services, example_study, enrolled
):
    client = signed_in("investigator")
    token = _token(client, example_study, enrolled)

    response = client.post(
        _url(example_study, f"{enrolled.code}/erase"),
        data={"csrf_token": token, "confirm_code": enrolled.code},
    )

    assert response.status_code == 302
    assert _reload(services, enrolled).status == "withdrawn"
    with Session(services.engine) as session:
        assert session.exec(select(ContactPoint)).all() == []
        assert session.exec(select(OutboundMessage)).all() == []
    [event] = _events(services, "participant.erase")
    assert event.actor == client.actor and event.details["counts"]["contact_points"] == 2
    page = client.get(_url(example_study, enrolled.code) + "?contacts=1").get_data(as_text=True)
    assert PHONE not in page and SIGNED_NAME not in page and "(erased)" in page
