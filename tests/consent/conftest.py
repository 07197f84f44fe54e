"""Fixtures for consent: the example study on a fresh database, participants, an amendment."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from study.models import Participant
from study.pii import PiiVault
from study.protocol import Protocol, load_protocol
from study.protocol.registry import register_protocol

EXAMPLES = Path(__file__).parents[2] / "examples"
EXAMPLE = EXAMPLES / "protocols/assistant-flourishing-rct.yaml"
RIGHT_ANSWERS = {"allocation_by_chance": "chance", "can_withdraw": "yes", "assistant_is_ai": "ai"}


@pytest.fixture
def vault() -> PiiVault:
    return PiiVault(Fernet.generate_key().decode())


@pytest.fixture
def protocol() -> Protocol:
    return load_protocol(EXAMPLE)


@pytest.fixture
def examples_copy(tmp_path) -> Path:
    """A private copy of examples/ that a test may amend."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


def amend(examples_copy: Path, *, version: str, extra_text: str = "", policy: str | None = None):
    """The example protocol with a new consent document version (and optionally another
    data-on-withdrawal rule), loaded from the private copy."""
    source = examples_copy / "protocols/assistant-flourishing-rct.yaml"
    text = source.read_text()
    text = text.replace('version: "1.0"', f'version: "{version}"', 1)
    if policy is not None:
        text = text.replace("data_on_withdrawal: keep", f"data_on_withdrawal: {policy}", 1)
    source.write_text(text)
    if extra_text:
        document = examples_copy / "consent/assistant-flourishing-rct-consent-v1.md"
        document.write_text(document.read_text() + "\n" + extra_text + "\n")
    return load_protocol(source)


@pytest.fixture
def study(session, protocol):
    registration = register_protocol(session, protocol, actor="test")
    session.commit()
    return registration


@pytest.fixture
def make_participant(session, study, clock):
    """A participant of the example study with the given status (default `screening`)."""
    counter = iter(range(1, 10_000))

    def make(status: str = "screening", code: str | None = None) -> Participant:
        participant = Participant(
            study_id=study.study.id,
            code=code or f"P-TEST{next(counter):03d}",
            status=status,
            protocol_version_id=study.version.id,
            timezone="Europe/London",
            created_at=clock.now() - timedelta(days=1),
        )
        session.add(participant)
        session.commit()
        return participant

    return make


# Distinctive values, so that a search of the raw database file cannot match anything else.
PHONE = "+447700900461"
EMAIL = "juniper.quist@example.org"
SIGNED_NAME = "Juniper Quistgaard"
FREE_TEXT = "my allotment on Zebedee Lane keeps me going"
CHAT_TEXT = "I told the assistant about Marmaduke my tortoise"
CHAT_REPLY = "Marmaduke sounds like good company"
MEMORY_NOTE = "I walk Marmaduke round Quillfeather Park"
GOAL_TEXT = "Phone my sister Ottoline every Sunday"
SCREENED_AGE = 47
SMS_BODY = "STOP texting me at 07700 900461 please, Juniper"
EMAIL_BODY = "Dear Juniper Quistgaard, your weekly questionnaire is ready"


@pytest.fixture
def populate(session, study, vault, protocol, clock):
    """Give a participant everything a real one accumulates: contact points, a signed consent
    with chat storage, an allocation, occasions, answers with free text, chats and messages.
    Returns the ids of what it made."""
    from sqlmodel import select

    from consent import sign
    from study.models import (
        Allocation,
        Arm,
        ChatSession,
        ChatTurn,
        ContactPoint,
        EnrollmentProgress,
        InboundMessage,
        Interaction,
        ItemResponse,
        MemoryNote,
        Occasion,
        OutboundMessage,
        ParticipantGoal,
        Response,
    )

    def fill(participant: Participant) -> dict:
        now = clock.now()
        for kind, value in (("sms", PHONE), ("email", EMAIL)):
            session.add(
                ContactPoint(
                    participant_id=participant.id,
                    kind=kind,
                    value_encrypted=vault.encrypt(value),
                    lookup_hash=vault.lookup_hash(kind, value),
                )
            )
        consent = sign(
            session,
            vault,
            participant=participant,
            protocol=protocol,
            signed_name=SIGNED_NAME,
            options={"store_chat_content": True},
            now=now,
            actor=f"participant:{participant.code}",
        )
        participant.status = "enrolled"
        participant.enrolled_at = now
        participant.strata = {"wellbeing": "high", "age_band": "age_35_plus"}
        session.add(participant)
        arm = session.exec(
            select(Arm).where(Arm.study_id == study.study.id, Arm.key == "reflective")
        ).one()
        session.add(
            Allocation(
                participant_id=participant.id,
                arm_id=arm.id,
                stratum="wellbeing=high|age_band=age_35_plus",
                scheme="permuted_blocks",
                sequence_number=17,
            )
        )
        session.flush()
        occasions = {}
        for key, wave, status, offset in (
            ("baseline", 0, "completed", 0),
            ("weekly", 1, "missed", 7),
            ("weekly", 2, "sent", 14),
            ("weekly", 3, "scheduled", 21),
        ):
            occasion = Occasion(
                participant_id=participant.id,
                protocol_version_id=study.version.id,
                schedule_key=key,
                wave=wave,
                kind="baseline" if key == "baseline" else "wave",
                instruments=["who5"],
                due_at=now + timedelta(days=offset),
                closes_at=now + timedelta(days=offset, hours=48),
                status=status,
            )
            session.add(occasion)
            session.flush()
            occasions[(key, wave)] = occasion
        baseline = occasions[("baseline", 0)]
        response = Response(
            occasion_id=baseline.id,
            participant_id=participant.id,
            instrument_id="who5",
            instrument_version="1",
            channel="web",
            consent_version=consent.document_version,
            status="complete",
            submitted_at=now,
        )
        session.add(response)
        session.flush()
        session.add(ItemResponse(response_id=response.id, item_id="who5_1", value=3))
        session.add(ItemResponse(response_id=response.id, item_id="comment", text=FREE_TEXT))
        session.add(
            Interaction(
                study_id=study.study.id,
                participant_id=participant.id,
                arm_id=arm.id,
                event_id=f"evt-{participant.code}",
                session_id="s1",
                role="user",
                occurred_at=now,
                prompt_tokens=12,
                content_encrypted=vault.encrypt(CHAT_TEXT),
            )
        )
        chat = ChatSession(
            participant_id=participant.id, arm_id=arm.id, key=f"chat-{participant.code}"
        )
        session.add(chat)
        session.flush()
        session.add(
            ChatTurn(
                chat_session_id=chat.id,
                participant_id=participant.id,
                key=f"turn-{participant.code}",
                status="answered",
                message_encrypted=vault.encrypt(CHAT_TEXT),
                reply_encrypted=vault.encrypt(CHAT_REPLY),
                sent_at=now,
                answered_at=now,
            )
        )
        session.add(
            MemoryNote(participant_id=participant.id, text_encrypted=vault.encrypt(MEMORY_NOTE))
        )
        session.add(
            ParticipantGoal(participant_id=participant.id, text_encrypted=vault.encrypt(GOAL_TEXT))
        )
        messages = []
        for status, occasion, channel, body in (
            ("sent", baseline, "email", EMAIL_BODY),
            ("pending", occasions[("weekly", 2)], "sms", "Your weekly questions: reply 1-5"),
            ("sending", occasions[("weekly", 2)], "email", "Reminder: weekly questions"),
            ("pending", occasions[("weekly", 3)], "sms", "Week 3 questions"),
            ("failed", occasions[("weekly", 1)], "sms", "Week 1 questions"),
        ):
            message = OutboundMessage(
                participant_id=participant.id,
                occasion_id=occasion.id,
                channel=channel,
                purpose="invitation",
                body=body,
                status=status,
                send_after=occasion.due_at,
            )
            session.add(message)
            messages.append(message)
        session.add(
            EnrollmentProgress(
                participant_id=participant.id,
                screening_answers={"age": SCREENED_AGE, "owns_phone": True},
                screened_at=now,
                comprehension_attempts=2,
                baseline={"who5": {"answers": {"who5_1": 3}, "scores": {"raw": 13}}},
                baseline_at=now,
            )
        )
        session.add(
            InboundMessage(
                channel="sms",
                provider_message_id=f"SM-{participant.code}",
                sender_hash=vault.lookup_hash("sms", PHONE),
                participant_id=participant.id,
                body=SMS_BODY,
            )
        )
        session.commit()
        return {"consent": consent, "occasions": occasions, "messages": messages}

    return fill
