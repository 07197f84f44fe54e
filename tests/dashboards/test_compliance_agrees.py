"""The dashboards compute compliance column-wise for speed; `study.compliance` computes it an
occasion at a time. Both must say the same of every occasion: on the hand-built small study,
and on a seeded random one that mixes every stored status, message outcome, reminder, opening
and partial answer, windows open and closed."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from dashboards.queries import compliance_frame
from study.compliance import compliance_records
from study.models import Occasion, OutboundMessage, Response
from study.models.schedule import MESSAGE_STATUSES, OCCASION_STATUSES
from study.pii import PiiVault

from .conftest import W1, build_small_study

FIELDS = ("status", "reached", "late", "due")


def both(session, study_id, now):
    expected = {
        (r.participant, r.schedule_key): (r.status, r.reached, r.late, r.is_due(now))
        for r in compliance_records(session, study_id, now=now)
    }
    occasions, _ = compliance_frame(session, study_id, now=now, include_ema=True)
    actual = {
        (row["participant"], row["occasion"]): tuple(row[f] for f in FIELDS)
        for row in occasions.to_dict("records")
    }
    return expected, actual


def add_random_occasions(session, small, rng: random.Random) -> None:
    """Ten more occasions per allocated participant, statuses and messages drawn at random."""
    version_id = session.get(Occasion, 1).protocol_version_id
    for code in ("P-A001", "P-A002", "P-B001", "P-B002", "P-C001"):
        for n in range(10):
            due = W1 + timedelta(days=rng.randint(-10, 30), hours=rng.randint(0, 23))
            status = rng.choice(OCCASION_STATUSES)
            occasion = Occasion(
                participant_id=small.ids[code],
                protocol_version_id=version_id,
                schedule_key=f"random{n}",
                wave=3 + n,
                kind="wave",
                due_at=due,
                closes_at=due + timedelta(hours=rng.choice([6, 48, 400])),
                status=status,
                opened_at=due + timedelta(hours=1) if rng.random() < 0.4 else None,
                completed_at=due + timedelta(hours=rng.choice([2, 30, 60]))
                if status == "completed"
                else None,
            )
            session.add(occasion)
            session.flush()
            for _ in range(rng.randint(0, 3)):
                sent = rng.random() < 0.7
                session.add(
                    OutboundMessage(
                        participant_id=small.ids[code],
                        occasion_id=occasion.id,
                        channel=rng.choice(["sms", "email"]),
                        purpose=rng.choice(["invitation", "reminder"]),
                        status=rng.choice(MESSAGE_STATUSES),
                        send_after=due,
                        sent_at=due + timedelta(hours=rng.randint(0, 40)) if sent else None,
                    )
                )
            if rng.random() < 0.3:
                session.add(
                    Response(
                        occasion_id=occasion.id,
                        participant_id=small.ids[code],
                        instrument_id="who5",
                        instrument_version="1",
                        channel="web",
                    )
                )
    session.commit()


def test_both_agree_on_the_small_study(session, clock):
    small = build_small_study(session, PiiVault(Fernet.generate_key().decode()))
    expected, actual = both(session, small.study_id, clock.now())
    assert actual == expected
    assert len(actual) == 11  # the EMA prompt included


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_both_agree_on_a_random_study(session, clock, seed):
    small = build_small_study(session, PiiVault(Fernet.generate_key().decode()))
    add_random_occasions(session, small, random.Random(seed))
    expected, actual = both(session, small.study_id, clock.now())
    assert len(actual) == 61
    assert actual == expected
