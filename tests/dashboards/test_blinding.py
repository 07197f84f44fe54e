"""`study.blinding`: unblinding a study is one audited act per study, with a reason, read back
from the audit log."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from study import audit, blinding
from study.models import AuditEvent
from study.pii import PiiVault

from .conftest import build_small_study

ACTOR = "researcher:pi@example.org"


@pytest.fixture
def study_id(session):
    return build_small_study(session, PiiVault(Fernet.generate_key().decode())).study_id


def test_a_study_starts_blinded(session, study_id):
    assert not blinding.is_unblinded(session, study_id)
    assert blinding.unblinding(session, study_id) is None


def test_unblinding_is_recorded_in_the_audit_log_with_its_reason(session, study_id, clock):
    done = blinding.unblind(
        session, study_id, actor=ACTOR, reason="  database locked 2026-03-01  ", now=clock.now()
    )
    session.commit()
    assert (done.actor, done.reason) == (ACTOR, "database locked 2026-03-01")
    assert blinding.is_unblinded(session, study_id)
    assert blinding.unblinding(session, study_id) == done
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "study.unblinded")).all()
    assert (event.actor, event.entity_type, event.entity_id) == (ACTOR, "study", str(study_id))
    assert event.details == {"reason": "database locked 2026-03-01"}
    assert event.occurred_at == clock.now()
    assert audit.verify_chain(audit.events(session)) == []


def test_unblinding_is_per_study(session, study_id, clock):
    blinding.unblind(session, study_id, actor=ACTOR, reason="final analysis", now=clock.now())
    assert not blinding.is_unblinded(session, study_id + 1)


@pytest.mark.parametrize(
    ("reason", "message"),
    [("", "give a reason"), ("   ", "give a reason"), ("x" * 1001, "at most 1000")],
)
def test_a_reason_is_required(session, study_id, clock, reason, message):
    with pytest.raises(blinding.BlindingError, match=message):
        blinding.unblind(session, study_id, actor=ACTOR, reason=reason, now=clock.now())
    assert not blinding.is_unblinded(session, study_id)


def test_a_study_is_unblinded_once(session, study_id, clock):
    blinding.unblind(session, study_id, actor=ACTOR, reason="final analysis", now=clock.now())
    with pytest.raises(blinding.BlindingError, match="already unblinded by researcher:pi@"):
        blinding.unblind(
            session, study_id, actor="researcher:b@x.org", reason="again", now=clock.now()
        )
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "study.unblinded")).all()
    assert len(events) == 1


def test_an_unknown_study_cannot_be_unblinded(session, study_id, clock):
    with pytest.raises(blinding.BlindingError, match="no study with id 999"):
        blinding.unblind(session, 999, actor=ACTOR, reason="why", now=clock.now())
