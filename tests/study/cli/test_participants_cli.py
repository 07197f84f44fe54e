"""`flourish participant withdraw|export|erase`: data-subject requests from the shell."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from consent import sign
from study.models import AuditEvent, ContactPoint, OutboundMessage, Participant
from study.pii import PiiVault
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from tests.study.web.conftest import EXAMPLE

PHONE = "+447700900777"


@pytest.fixture
def pii_key(monkeypatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("FLOURISH_PII_KEY", key)
    return key


@pytest.fixture
def enrolled(sqlite_engine, pii_key, clock):
    vault = PiiVault(pii_key)
    protocol = load_protocol(EXAMPLE)
    with Session(sqlite_engine, expire_on_commit=False) as session:
        study = register_protocol(session, protocol, actor="test").study
        participant = Participant(study_id=study.id, code="P-CLI001")
        session.add(participant)
        session.flush()
        session.add(
            ContactPoint(
                participant_id=participant.id,
                kind="sms",
                value_encrypted=vault.encrypt(PHONE),
                lookup_hash=vault.lookup_hash("sms", PHONE),
            )
        )
        sign(
            session,
            vault,
            participant=participant,
            protocol=protocol,
            signed_name="Cli Tester",
            options={},
            now=clock.now(),
            actor="test",
        )
        participant.status = "enrolled"
        session.add(
            OutboundMessage(
                participant_id=participant.id,
                channel="sms",
                purpose="invitation",
                body="Week 1",
                send_after=clock.now(),
            )
        )
        session.commit()
        return participant


def _actions(engine) -> list[str]:
    with Session(engine) as session:
        return [event.actor + " " + event.action for event in session.exec(select(AuditEvent))]


def test_withdraw_cancels_pending_messages_and_is_audited(flourish, sqlite_engine, enrolled):
    result = flourish("participant", "withdraw", "P-CLI001", "--reason", "by letter", "--yes")

    assert result.exit_code == 0, result.output
    assert "withdrawn; 1 pending message(s)" in result.output
    with Session(sqlite_engine) as session:
        assert session.exec(select(OutboundMessage.status)).one() == "cancelled"
        assert session.exec(select(Participant.status)).one() == "withdrawn"
    assert any(
        a.startswith("cli:") and a.endswith("participant.withdraw") for a in _actions(sqlite_engine)
    )

    again = flourish("participant", "withdraw", "P-CLI001", "--yes")
    assert "already withdrawn" in again.output


def test_withdraw_asks_for_confirmation(flourish, sqlite_engine, enrolled):
    result = flourish("participant", "withdraw", "P-CLI001", input="n\n")

    assert result.exit_code == 1
    with Session(sqlite_engine) as session:
        assert session.exec(select(Participant.status)).one() == "enrolled"


def test_export_prints_everything_held_with_contact_details(flourish, enrolled, tmp_path):
    printed = flourish("participant", "export", "P-CLI001")
    assert printed.exit_code == 0, printed.output
    data = json.loads(printed.output)
    assert data["contact_points"][0]["value"] == PHONE
    assert data["consents"][0]["signature"] == "Cli Tester"

    target = tmp_path / "p.json"
    written = flourish("participant", "export", "P-CLI001", "-o", str(target))
    assert written.exit_code == 0
    assert json.loads(target.read_text())["participant"]["code"] == "P-CLI001"


def test_erase_needs_the_code_repeated_then_withdraws_and_erases(flourish, sqlite_engine, enrolled):
    refused = flourish("participant", "erase", "P-CLI001", "--confirm", "P-CLI002")
    assert refused.exit_code == 1 and "repeat the participant code" in refused.output

    result = flourish("participant", "erase", "P-CLI001", "--confirm", "P-CLI001")

    assert result.exit_code == 0, result.output
    assert "contact_points 1" in result.output
    with Session(sqlite_engine) as session:
        assert session.exec(select(ContactPoint)).all() == []
        assert session.exec(select(Participant.status)).one() == "withdrawn"
    actions = [a.split(" ")[1] for a in _actions(sqlite_engine)]
    assert actions[-2:] == ["participant.withdraw", "participant.erase"]


def test_an_unknown_code_is_an_error(flourish, sqlite_engine, pii_key):
    result = flourish("participant", "export", "P-NOBODY")
    assert result.exit_code == 1 and "no participant with code 'P-NOBODY'" in result.output
