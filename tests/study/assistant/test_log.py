"""The interaction log: idempotent by event id, content only with consent, redacted, encrypted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from study.assistant.log import (
    InteractionConflict,
    InteractionError,
    decrypt_content,
    record_interaction,
)
from study.models import Interaction
from study.pii import PiiVault

from .trial import ENROLLED_AT, make_trial

AT = ENROLLED_AT + timedelta(days=1, hours=3)


@pytest.fixture
def vault():
    return PiiVault(Fernet.generate_key().decode())


@pytest.fixture
def trial(session, vault):
    return make_trial(session, vault)


def turn(trial, participant, **overrides):
    arguments = {
        "vault": trial.vault,
        "study_id": trial.study.id,
        "participant": participant,
        "event_id": "evt-1",
        "session_id": "s-1",
        "role": "user",
        "occurred_at": AT,
        "source": "ingest",
        "content": "Hello, I slept badly.",
        "latency_ms": None,
        "prompt_tokens": 12,
        "completion_tokens": None,
        "model": "llama-3.1-8b",
        "prompt_version": "reflective-v1",
    }
    arguments.update(overrides)
    return record_interaction(trial.session, **arguments)


def test_a_turn_is_recorded_with_its_metadata_and_the_participants_arm(trial, session):
    ada = trial.participant("P-ADA", arm="instruct")
    interaction, created = turn(trial, ada, role="assistant", latency_ms=850, completion_tokens=40)
    session.commit()
    assert created
    stored = session.exec(select(Interaction)).one()
    assert stored.id == interaction.id
    assert (stored.participant_id, stored.arm_id) == (ada.id, trial.arms["instruct"].id)
    assert (stored.event_id, stored.session_id, stored.role, stored.source) == (
        "evt-1",
        "s-1",
        "assistant",
        "ingest",
    )
    assert stored.occurred_at == AT
    assert (stored.latency_ms, stored.prompt_tokens, stored.completion_tokens) == (850, 12, 40)
    assert (stored.model, stored.prompt_version) == ("llama-3.1-8b", "reflective-v1")


def test_content_is_stored_redacted_and_encrypted_when_the_participant_consented(trial, session):
    ada = trial.participant("P-ADA", store_content=True)
    text = "Text me on 07700 900461 or write to ada@example.org"
    interaction, _ = turn(trial, ada, content=text)
    session.commit()
    assert b"07700" not in interaction.content_encrypted
    assert b"example.org" not in interaction.content_encrypted
    assert decrypt_content(interaction, trial.vault) == "Text me on [phone] or write to [email]"


def test_without_consent_to_content_only_metadata_is_kept(trial, session):
    bob = trial.participant("P-BOB", store_content=False)
    interaction, created = turn(trial, bob, content="my secret thoughts")
    session.commit()
    assert created
    assert interaction.content_encrypted is None
    assert decrypt_content(interaction, trial.vault) is None
    assert interaction.prompt_tokens == 12


def test_a_withdrawn_consent_to_content_stops_storing_text(trial, session):
    ada = trial.participant("P-ADA", store_content=True)
    consent = ada_consent(session, ada)
    consent.withdrawn_at = AT
    session.add(consent)
    session.commit()
    interaction, _ = turn(trial, ada, content="after withdrawing the item")
    assert interaction.content_encrypted is None


def ada_consent(session, participant):
    from study.models import Consent

    return session.exec(select(Consent).where(Consent.participant_id == participant.id)).one()


def test_resending_an_event_returns_the_stored_row_and_creates_nothing(trial, session):
    ada = trial.participant("P-ADA")
    first, created_first = turn(trial, ada)
    session.commit()
    # The same instant written in another offset is the same event.
    again, created_again = turn(trial, ada, occurred_at=AT.astimezone(timezone(timedelta(hours=2))))
    session.commit()
    assert (created_first, created_again) == (True, False)
    assert again.id == first.id
    assert len(session.exec(select(Interaction)).all()) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"role": "assistant"},
        {"session_id": "s-2"},
        {"occurred_at": AT + timedelta(seconds=1)},
        {"prompt_tokens": 13},
        {"model": "other"},
        {"content": "something else entirely"},
    ],
)
def test_resending_an_event_id_with_different_data_is_a_conflict(trial, session, change):
    ada = trial.participant("P-ADA")
    turn(trial, ada)
    session.commit()
    with pytest.raises(InteractionConflict, match="evt-1"):
        turn(trial, ada, **change)


def test_an_event_id_of_another_participant_is_a_conflict(trial, session):
    ada, bob = trial.participant("P-ADA"), trial.participant("P-BOB")
    turn(trial, ada)
    session.commit()
    with pytest.raises(InteractionConflict, match="participant_id"):
        turn(trial, bob)


def test_event_ids_are_scoped_to_a_study(trial, session, vault):
    other = make_trial(session, vault, slug="other")
    ada, zoe = trial.participant("P-ADA"), other.participant("P-ZOE")
    _, created_a = turn(trial, ada)
    _, created_b = turn(other, zoe)
    session.commit()
    assert created_a and created_b


def test_a_participant_of_another_study_is_refused(trial, session, vault):
    other = make_trial(session, vault, slug="other")
    zoe = other.participant("P-ZOE")
    with pytest.raises(InteractionError, match="not in study"):
        turn(trial, zoe)


@pytest.mark.parametrize("status", ["withdrawn", "screening", "consented", "ineligible"])
def test_no_new_turns_from_participants_not_taking_part(trial, session, status):
    someone = trial.participant("P-OUT", status=status)
    with pytest.raises(InteractionError, match=status):
        turn(trial, someone)
    assert session.exec(select(Interaction)).all() == []


def test_a_turn_recorded_before_withdrawal_is_still_a_duplicate_afterwards(trial, session):
    ada = trial.participant("P-ADA")
    first, _ = turn(trial, ada)
    ada.status = "withdrawn"
    session.add(ada)
    session.commit()
    again, created = turn(trial, ada)
    assert (again.id, created) == (first.id, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "moderator"}, "role"),
        ({"source": "email"}, "source"),
        ({"occurred_at": datetime(2026, 3, 3, 12, 0)}, "timezone-aware"),
        ({"event_id": "x" * 101}, "event_id"),
        ({"event_id": "  "}, "must not be empty"),
        ({"model": "m" * 201}, "model"),
        ({"prompt_tokens": -1}, "negative"),
        ({"latency_ms": 1.5}, "whole number"),
        ({"completion_tokens": True}, "whole number"),
    ],
)
def test_malformed_turns_are_refused(trial, session, change, message):
    ada = trial.participant("P-ADA")
    with pytest.raises(InteractionError, match=message):
        turn(trial, ada, **change)


def test_a_given_arm_overrides_the_allocation(trial, session):
    ada = trial.participant("P-ADA", arm="instruct")
    interaction, _ = turn(trial, ada, arm_id=trial.arms["reflective"].id)
    assert interaction.arm_id == trial.arms["reflective"].id


def test_occurred_at_is_kept_as_a_utc_instant(trial, session):
    ada = trial.participant("P-ADA")
    local = datetime(2026, 3, 3, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    turn(trial, ada, occurred_at=local)
    session.commit()
    session.expire_all()
    stored = session.exec(select(Interaction)).one()
    assert stored.occurred_at == datetime(2026, 3, 4, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize(("theirs", "expected_error"), [({}, None), ({"role": "tool"}, "role")])
def test_a_concurrent_writer_of_the_same_event_wins_cleanly(
    trial, session, monkeypatch, theirs, expected_error
):
    # Their row lands after our look-up found nothing, so only the insert's ON CONFLICT sees it.
    from study.assistant import log

    ada = trial.participant("P-ADA")
    first, _ = turn(trial, ada, **theirs)
    real_find = log._find
    lookups = []

    def stale_then_real(*args):
        lookups.append(1)
        return None if len(lookups) == 1 else real_find(*args)

    monkeypatch.setattr(log, "_find", stale_then_real)
    if expected_error:
        with pytest.raises(InteractionConflict, match=expected_error):
            turn(trial, ada)
    else:
        again, created = turn(trial, ada)
        assert (again.id, created) == (first.id, False)
    assert len(session.exec(select(Interaction)).all()) == 1
