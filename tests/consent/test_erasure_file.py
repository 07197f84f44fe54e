"""After erasure, the participant's personal data are gone from the SQLite files themselves.

Deleting or blanking a row is not enough on its own: SQLite leaves old cell contents in free
space unless `secure_delete` is on, and the write-ahead log keeps earlier page images until it
is checkpointed. This reads the raw bytes of the database file and its -wal file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from consent import erase_subject, purge_erased_residues, withdraw
from study.models import Consent, ContactPoint, Interaction

from .conftest import CHAT_TEXT, EMAIL_BODY, FREE_TEXT, SMS_BODY

REASON = "Juniper moved to Quistgaard Farm"


@pytest.fixture
def engine(sqlite_engine):
    """These tests are about SQLite's files, so they run on SQLite only."""
    return sqlite_engine


def _files_bytes(engine) -> bytes:
    path = Path(engine.url.database)
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _secrets(session) -> list[bytes]:
    """Plaintext free text and the ciphertexts of contact points, signature and chat."""
    ciphertexts = [bytes(c) for c in session.exec(select(ContactPoint.value_encrypted))]
    ciphertexts += [bytes(c) for c in session.exec(select(Consent.signature_encrypted))]
    ciphertexts += [bytes(c) for c in session.exec(select(Interaction.content_encrypted))]
    assert len(ciphertexts) == 4
    plaintexts = [FREE_TEXT, SMS_BODY, EMAIL_BODY, REASON]
    return [text.encode() for text in plaintexts] + ciphertexts


@pytest.mark.parametrize("keep_pseudonymous_data", [True, False])
def test_erased_values_are_absent_from_the_database_file_and_its_wal(
    engine, session, protocol, make_participant, populate, clock, keep_pseudonymous_data
):
    participant = make_participant()
    # Fill, then store data under `store_chat_content` before anyone withdraws.
    populate(participant)
    secrets = _secrets(session)
    participant.withdrawal_reason = REASON
    session.add(participant)
    session.commit()
    before = _files_bytes(engine)
    assert all(secret in before for secret in secrets), "the test data never reached the files"

    participant.status = "withdrawn"  # as a withdrawal would, without its own erasure of chats
    erase_subject(
        session,
        participant=participant,
        now=clock.now(),
        actor="researcher:pi@example.org",
        keep_pseudonymous_data=keep_pseudonymous_data,
    )
    session.commit()
    session.close()
    outcome = purge_erased_residues(engine)

    assert outcome["busy"] == 0
    after = _files_bytes(engine)
    left = [secret[:24] for secret in secrets if secret in after]
    assert left == []


def test_a_withdrawal_with_keep_leaves_no_chat_text_in_the_files(
    engine, session, protocol, make_participant, populate, clock
):
    participant = make_participant()
    populate(participant)
    chat = bytes(session.exec(select(Interaction.content_encrypted)).one())
    assert chat in _files_bytes(engine)

    withdraw(session, participant=participant, protocol=protocol, now=clock.now(), actor="t")
    session.commit()
    session.close()
    purge_erased_residues(engine)

    assert chat not in _files_bytes(engine)
    assert CHAT_TEXT.encode() not in _files_bytes(engine)
