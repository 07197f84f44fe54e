"""Answers, contacts and assistant use added to conftest's small study, for the outcomes,
usage and data-quality pages. Every expected value in their tests is counted from this table.

WHO-5 responses (items who5_1..5 scored 0-5; raw = sum, percentage = 4 x raw):

| occasion | items           | raw | %  | started -> submitted      | flags                       |
|----------|-----------------|-----|----|---------------------------|-----------------------------|
| A001-1   | 3 3 3 3 3       | 15  | 60 | W1+2h-4s -> W1+2h         | straight-lining, speeding   |
| B001-1   | 1 2 3 2 2       | 10  | 40 | W1+30h-5min -> W1+30h     |                             |
| B002-1   | 4 3 3 3 2       | 15  | 60 | W1+1h-3min -> W1+1h       |                             |
| B001-2   | 5 4 4 4 3       | 20  | 80 | W2+3h-10min -> W2+3h      |                             |
| B002-2   | 5 3 4 4 4       | 20  | 80 | W2+50h-10min -> W2+50h    | after close by 120 minutes  |
| C001-2   | who5_1 = 2 + a free-text answer, partial (never submitted, never scored)   |

UCLA-3 of B001-2 (items 1-3): 1 2 3, started W2-31min, submitted W2-30min: before due by 30
minutes, 20 s per item. Windows close 48 h after the due time (conftest).

Contacts (the small study already gives P-A001 an email): P-B002 the same email written
differently, P-A002 and P-C001 one phone number written two ways, P-B001 a phone of their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.fernet import Fernet
from flask import Flask
from sqlmodel import Session, select

from study.models import ContactPoint, ItemResponse, Occasion, Response
from study.pii import PiiVault

from .conftest import W1, W2, SmallStudy, build_small_study

SCRIPT = "<script>alert('x')</script> I felt fine"
SHARED_PHONE = ("+44 7700 900123", "0044-7700-900-123")


def add_answers(session: Session, small: SmallStudy, vault: PiiVault) -> None:
    """Add the responses and contacts of the module docstring to `small` and commit."""
    occasions = {
        (row.participant_id, row.wave): row.id
        for row in session.exec(select(Occasion).where(Occasion.kind != "ema"))
    }

    def respond(code, wave, instrument, values, started, submitted, *, texts=None):
        response = Response(
            occasion_id=occasions[(small.ids[code], wave)],
            participant_id=small.ids[code],
            instrument_id=instrument,
            instrument_version="1",
            channel="web",
            status="complete" if submitted else "partial",
            started_at=started,
            submitted_at=submitted,
        )
        session.add(response)
        session.flush()
        for number, value in enumerate(values, 1):
            session.add(
                ItemResponse(
                    response_id=response.id,
                    item_id=f"{instrument}_{number}",
                    value=value,
                    answered_at=started,
                )
            )
        for item, text in (texts or {}).items():
            session.add(
                ItemResponse(response_id=response.id, item_id=item, text=text, answered_at=started)
            )

    def spent(end: datetime, **delta) -> tuple[datetime, datetime]:
        return end - timedelta(**delta), end

    h = timedelta(hours=1)
    respond("P-A001", 1, "who5", [3, 3, 3, 3, 3], *spent(W1 + 2 * h, seconds=4))
    respond("P-B001", 1, "who5", [1, 2, 3, 2, 2], *spent(W1 + 30 * h, minutes=5))
    respond("P-B002", 1, "who5", [4, 3, 3, 3, 2], *spent(W1 + h, minutes=3))
    respond("P-B001", 2, "who5", [5, 4, 4, 4, 3], *spent(W2 + 3 * h, minutes=10))
    respond("P-B002", 2, "who5", [5, 3, 4, 4, 4], *spent(W2 + 50 * h, minutes=10))
    respond("P-B001", 2, "ucla3", [1, 2, 3], *spent(W2 - timedelta(minutes=30), minutes=1))
    respond("P-C001", 2, "who5", [2], W2 + h, None, texts={"comment": SCRIPT})

    def contact(code, kind, value):
        session.add(
            ContactPoint(
                participant_id=small.ids[code],
                kind=kind,
                value_encrypted=vault.encrypt(value),
                lookup_hash=vault.lookup_hash(kind, value),
            )
        )

    contact("P-B002", "email", "  ada@Example.ORG ")
    contact("P-A002", "sms", SHARED_PHONE[0])
    contact("P-C001", "sms", SHARED_PHONE[1])
    contact("P-B001", "sms", "+44 7700 900999")
    session.commit()


def study_with_answers(session: Session) -> SmallStudy:
    """The small study with these answers, on `session`'s database."""
    vault = PiiVault(Fernet.generate_key().decode())
    small = build_small_study(session, vault)
    add_answers(session, small, vault)
    return small


def answer_on_app(app: Flask, small: SmallStudy) -> SmallStudy:
    """Add these answers to the small study already on the app's database."""
    services = app.extensions["flourish"]
    with Session(services.engine, expire_on_commit=False) as session:
        add_answers(session, small, services.pii)
    return small
