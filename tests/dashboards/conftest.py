"""A small study whose every count is known by hand, and a way to call Dash callbacks.

The study (example protocol, now = 2026-03-02 09:00 UTC, the `clock` fixture):

| code   | arm        | status    | wellbeing | enrolled   | wave 1 (closed)   | wave 2 (open) |
|--------|------------|-----------|-----------|------------|-------------------|---------------|
| P-A001 | instruct   | enrolled  | low       | 2026-02-02 | completed         | scheduled     |
| P-A002 | instruct   | withdrawn | high      | 2026-02-02 | missed, answered  | cancelled     |
| P-B001 | reflective | enrolled  | high      | 2026-02-03 | completed late    | completed     |
| P-B002 | reflective | completed | low       | 2026-02-04 | completed         | completed     |
| P-C001 | control    | enrolled  | low       | 2026-02-04 | sent, closed      | partial       |
| P-S001 | (none)     | screening |           |            |                   |               |
| P-S002 | (none)     | consented |           |            |                   |               |

Two more people were screened out (audit events only). P-A001 also has an EMA prompt, which
the wave views leave out. Messages: A001 w1 email delivered, A001 w2 email pending; A002 w1
SMS failed; B001 w1 email sent and a reminder email sent before completion (hence late);
C001 w1 SMS sent, C001 w2 SMS undelivered. A001 has two assistant turns and an email address.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from study import audit
from study.models import (
    Allocation,
    Arm,
    Consent,
    ContactPoint,
    Interaction,
    Occasion,
    OutboundMessage,
    Participant,
    Response,
)
from study.pii import PiiVault
from study.protocol import load_protocol
from study.protocol.registry import register_protocol

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
W1 = datetime(2026, 2, 9, 9, 0, tzinfo=UTC)
W2 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)
EMAIL = "ada@example.org"


@dataclass
class SmallStudy:
    study_id: int
    ids: dict[str, int]
    messages: dict[str, int]


def build_small_study(session: Session, vault: PiiVault) -> SmallStudy:
    study = register_protocol(session, load_protocol(EXAMPLE), actor="test").study
    version_id = study_version(session, study.id)
    arms = {arm.key: arm.id for arm in session.exec(select(Arm).where(Arm.study_id == study.id))}
    for _ in range(2):
        audit.record(
            session,
            "anonymous",
            "screening.ineligible",
            entity_type="study",
            entity_id=study.id,
            at=W1,
        )
    people = [
        ("P-A001", "instruct", "enrolled", "low", datetime(2026, 2, 2, 10, tzinfo=UTC)),
        ("P-A002", "instruct", "withdrawn", "high", datetime(2026, 2, 2, 11, tzinfo=UTC)),
        ("P-B001", "reflective", "enrolled", "high", datetime(2026, 2, 3, 10, tzinfo=UTC)),
        ("P-B002", "reflective", "completed", "low", datetime(2026, 2, 4, 10, tzinfo=UTC)),
        ("P-C001", "control", "enrolled", "low", datetime(2026, 2, 4, 12, tzinfo=UTC)),
        ("P-S001", None, "screening", None, None),
        ("P-S002", None, "consented", None, None),
    ]
    ids: dict[str, int] = {}
    for number, (code, arm, status, wellbeing, enrolled_at) in enumerate(people, 1):
        strata = {"wellbeing": wellbeing, "age_band": "under_35"} if wellbeing else {}
        participant = Participant(
            study_id=study.id,
            code=code,
            status=status,
            protocol_version_id=version_id,
            strata=strata,
            enrolled_at=enrolled_at,
        )
        session.add(participant)
        session.flush()
        ids[code] = participant.id
        if status != "screening":
            session.add(
                Consent(
                    participant_id=participant.id,
                    document_version="1.0",
                    document_hash="0" * 64,
                    signature_encrypted=b"x",
                )
            )
        if arm:
            session.add(
                Allocation(
                    participant_id=participant.id,
                    arm_id=arms[arm],
                    scheme="test",
                    sequence_number=number,
                )
            )

    def occasion(code, wave, due, status, *, completed_at=None, kind="wave", key=None):
        row = Occasion(
            participant_id=ids[code],
            protocol_version_id=version_id,
            schedule_key=key or f"week{wave}",
            wave=wave,
            kind=kind,
            due_at=due,
            closes_at=due + WINDOW,
            status=status,
            completed_at=completed_at,
        )
        session.add(row)
        session.flush()
        return row.id

    o = {
        "A001-1": occasion("P-A001", 1, W1, "completed", completed_at=W1 + timedelta(hours=2)),
        "A002-1": occasion("P-A002", 1, W1, "missed"),
        "B001-1": occasion("P-B001", 1, W1, "completed", completed_at=W1 + timedelta(hours=30)),
        "B002-1": occasion("P-B002", 1, W1, "completed", completed_at=W1 + timedelta(hours=1)),
        "C001-1": occasion("P-C001", 1, W1, "sent"),
        "A001-2": occasion("P-A001", 2, W2, "scheduled"),
        "A002-2": occasion("P-A002", 2, W2, "cancelled"),
        "B001-2": occasion("P-B001", 2, W2, "completed", completed_at=W2 + timedelta(hours=3)),
        "B002-2": occasion("P-B002", 2, W2, "completed", completed_at=W2 + timedelta(hours=4)),
        "C001-2": occasion("P-C001", 2, W2, "partial"),
    }
    occasion(
        "P-A001",
        1,
        W1 + timedelta(hours=5),
        "completed",
        kind="ema",
        key="ema-1",
        completed_at=W1 + timedelta(hours=5),
    )
    session.add(
        Response(
            occasion_id=o["A002-1"],
            participant_id=ids["P-A002"],
            instrument_id="who5",
            instrument_version="1",
            channel="sms",
        )
    )

    def message(key, code, channel, status, *, purpose="invitation", sent=None, error=""):
        due = W1 if key.endswith("-1") else W2
        row = OutboundMessage(
            participant_id=ids[code],
            occasion_id=o[key],
            channel=channel,
            purpose=purpose,
            status=status,
            send_after=due,
            sent_at=sent,
            attempts=1 if sent or status == "failed" else 0,
            last_error=error,
        )
        session.add(row)
        session.flush()
        return row.id

    messages = {
        "A001-1": message("A001-1", "P-A001", "email", "delivered", sent=W1),
        "A001-2": message("A001-2", "P-A001", "email", "pending"),
        "A002-1": message("A002-1", "P-A002", "sms", "failed", error="carrier refused"),
        "B001-1": message("B001-1", "P-B001", "email", "sent", sent=W1),
        "B001-1r": message(
            "B001-1", "P-B001", "email", "sent", purpose="reminder", sent=W1 + timedelta(hours=24)
        ),
        "C001-1": message("C001-1", "P-C001", "sms", "sent", sent=W1),
        "C001-2": message("C001-2", "P-C001", "sms", "undelivered", sent=W2, error="30003"),
    }
    for minute in (0, 1):
        session.add(
            Interaction(
                study_id=study.id,
                participant_id=ids["P-A001"],
                arm_id=arms["instruct"],
                event_id=f"e{minute}",
                session_id="s1",
                role="user" if minute == 0 else "assistant",
                occurred_at=W1 + timedelta(days=1, minutes=minute),
                prompt_tokens=10,
                completion_tokens=5,
            )
        )
    session.add(
        ContactPoint(
            participant_id=ids["P-A001"],
            kind="email",
            value_encrypted=vault.encrypt(EMAIL),
            lookup_hash=vault.lookup_hash("email", EMAIL),
        )
    )
    session.commit()
    return SmallStudy(study.id, ids, messages)


def study_version(session: Session, study_id: int) -> int:
    from study.protocol.registry import current_version

    return current_version(session, study_id).id


@pytest.fixture
def small_study(app) -> SmallStudy:
    """The small study on the app's database."""
    services = app.extensions["flourish"]
    with Session(services.engine, expire_on_commit=False) as session:
        return build_small_study(session, services.pii)


@pytest.fixture
def dash_post(client):
    """POST one callback to `_dash-update-component` the way the renderer does.

    `outputs`: [(id, property)], `inputs`/`state`: [(id, property, value)]. `token`: the CSRF
    header value (None: no header).
    """

    def post(outputs, inputs, state=(), *, token=None):
        if len(outputs) == 1:
            output = "{}.{}".format(*outputs[0])
            shaped = {"id": outputs[0][0], "property": outputs[0][1]}
        else:
            output = ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
            shaped = [{"id": i, "property": p} for i, p in outputs]
        body = {
            "output": output,
            "outputs": shaped,
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
            "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"] if inputs else [],
        }
        headers = {"X-CSRFToken": token} if token else {}
        return client.post(
            "/dashboard/_dash-update-component",
            data=json.dumps(body),
            content_type="application/json",
            headers=headers,
        )

    return post


def dashboard_token(client) -> str:
    """The CSRF token the dashboard page hands the renderer (in its cookie)."""
    client.get("/dashboard/")
    cookie = client.get_cookie("flourish_dashboard_csrf", path="/dashboard/")
    assert cookie is not None, "the dashboard page set no CSRF cookie"
    return cookie.value
