"""Input no browser sends, on SQLite and PostgreSQL: NUL characters and over-large ids.

Found while probing for this suite: on PostgreSQL (whose text cannot hold NUL) a NUL in the
login email, a study slug or participant code in the URL, or a withdrawal reason reached a query
and failed with a 500; the app now refuses any URL or form field holding NUL with 400 before a
view runs. And a chat turn or note id past the database's integer range was a 500 on both
databases; it is now 404, like any id that names nothing of the participant's.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from study.models import AuditEvent, Participant
from tests.security.conftest import CODE

SLUG = "assistant-flourishing-rct"


@pytest.fixture
def app(settings, engine, clock):
    """The app on the parametrised database (SQLite and PostgreSQL), with CSRF on."""
    from study.web import create_app

    app = create_app(settings, engine=engine, clock=clock)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


REQUESTS = [
    ("anonymous", "POST", "/login", {"email": "a\x00@example.org", "password": "x" * 12}),
    ("anonymous", "GET", f"/join/{SLUG}%00", None),
    ("anonymous", "GET", f"/join/{SLUG}?code=A%00B", None),
    ("anonymous", "POST", f"/join/{SLUG}/screening", {"age": "2\x009"}),
    ("admin", "GET", f"/studies/{SLUG}%00", None),
    ("admin", "GET", f"/studies/{SLUG}/participants/P%00", None),
    ("admin", "GET", f"/studies/{SLUG}/participants/?status=%00", None),
    (
        "admin",
        "POST",
        f"/studies/{SLUG}/participants/{CODE}/withdraw",
        {"confirm": "y", "reason": "a\x00"},
    ),
    ("participant", "POST", "/p/chat/memory", {"text": "a\x00b"}),
    ("participant", "POST", "/p/timezone", {"timezone": "Europe/Lon\x00don"}),
    ("participant", "POST", "/p/withdraw", {"reason": "a\x00b"}),
]


def test_nul_in_a_url_or_form_field_is_a_400_and_changes_nothing(app, engine, world, persona):
    clients = {name: persona(name) for name in ("anonymous", "admin", "participant")}
    with Session(engine) as session:
        events_before = session.exec(select(func.count()).select_from(AuditEvent)).one()
    for name, method, path, data in REQUESTS:
        response = clients[name].open(method, path, data=dict(data) if data else None)
        assert response.status_code == 400, (method, path, response.status_code)
    with Session(engine) as session:
        status = session.exec(select(Participant.status).where(Participant.code == CODE)).one()
        events_after = session.exec(select(func.count()).select_from(AuditEvent)).one()
    assert status == "enrolled"
    assert events_after == events_before


BIG = "9" * 25


def test_ids_past_the_integer_range_name_nothing(world, persona, monkeypatch):
    monkeypatch.setenv("FLOURISH_ARM_REFLECTIVE_API_KEY", "key")  # so a reply reaches the database
    participant = persona("participant")
    for path, data in [
        (f"/p/chat/turns/{BIG}/reply", {}),
        (f"/p/chat/memory/{BIG}", {"text": "x"}),
        (f"/p/chat/goals/{BIG}", {"action": "delete"}),
        (f"/p/chat/turns/{2**31}/reply", {}),
    ]:
        assert participant.open("POST", path, data=data).status_code == 404, path
    # The largest id that can exist is still looked up normally (and is not the participant's).
    assert (
        participant.open("POST", f"/p/chat/memory/{2**31 - 1}", data={"text": "x"}).status_code
        == 404
    )
