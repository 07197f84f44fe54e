"""A small world for the security tests: the example study with one enrolled participant of the
reflective arm (assistant with memory and goals), an open survey occasion, a memory note and a
chat turn; and `persona(name)`, a client for each of PERSONAS (anonymous, the participant, each
researcher role, signed in through the real login form).

Each persona's session cookie is captured once and restored before every request, so a request
that ends a session (logout, opening a portal link) does not change who makes the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session, select

from study.accounts import ROLES
from study.assistant import turns
from study.assistant.memory import notes
from study.models import Consent
from study.protocol import load_protocol
from study.protocol.registry import register_protocol
from study.schedule.links import survey_token
from study.web.participate import portal_path
from tests.conftest import TEST_PASSWORD, csrf_token_from
from tests.study.assistant.enrolled import enroll
from tests.study.test_surveys import add_occasion

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
CODE = "P-SEC001"
PERSONAS = ("anonymous", "participant", *ROLES)


@dataclass
class World:
    slug: str
    code: str
    participant_id: int
    occasion_id: int
    survey_token: str
    portal_token: str
    note_id: int
    turn_id: int


def enrolled_world(app, settings, clock, code: str = CODE) -> World:
    """Register the example study (once) and enroll `code` in its reflective arm."""
    services = app.extensions["flourish"]
    protocol = load_protocol(EXAMPLE)
    with Session(services.engine, expire_on_commit=False) as session:
        registration = register_protocol(session, protocol, actor="test")
        session.commit()
        participant = enroll(
            session, protocol, "reflective", code=code, now=clock.now(), store_chat_content=True
        )
        participant.protocol_version_id = registration.version.id
        consent = session.exec(
            select(Consent).where(Consent.participant_id == participant.id)
        ).one()
        consent.signature_encrypted = services.pii.encrypt("A. Participant")
        session.add_all([participant, consent])
        session.commit()
        occasion = add_occasion(session, participant, clock.now())
        note = notes.add(session, services.pii, participant, "Walks help", now=clock.now())
        chat = turns.chat_for(session, participant, protocol)
        turn = turns.submit(session, services.pii, chat, "Hello there", now=clock.now())
        session.commit()
        with app.test_request_context():
            portal = portal_path(code).removeprefix("/p/")
        return World(
            slug=registration.study.slug,
            code=code,
            participant_id=participant.id,
            occasion_id=occasion.id,
            survey_token=survey_token(settings, occasion.id),
            portal_token=portal,
            note_id=note.id,
            turn_id=turn.id,
        )


@pytest.fixture
def world(app, settings, clock) -> World:
    return enrolled_world(app, settings, clock)


class Persona:
    """A test client that always speaks as one persona: its session cookie is put back before
    each request, and it knows a CSRF token valid for that session."""

    def __init__(self, app, name: str, cookie: str | None, csrf: str) -> None:
        self.name, self.csrf = name, csrf
        self.client = app.test_client()
        self._cookie = cookie

    def open(self, method: str, path: str, *, csrf: bool = True, **kwargs):
        if self._cookie is not None:
            self.client.set_cookie("session", self._cookie)
        else:
            self.client.delete_cookie("session")
        if method == "POST" and csrf:
            kwargs.setdefault("data", {}).setdefault("csrf_token", self.csrf)
            kwargs.setdefault("headers", {}).setdefault("X-CSRFToken", self.csrf)
        return self.client.open(path, method=method, **kwargs)


@pytest.fixture
def persona(app, world, make_researcher):
    """`persona(name)`: a `Persona` for one of PERSONAS, signed in through the real login form."""

    def make(name: str) -> Persona:
        client = app.test_client()
        if name == "participant":
            with client.session_transaction() as browser:
                browser["participant"] = world.code
        elif name != "anonymous":
            researcher = make_researcher(name)
            page = client.get("/login")
            client.post(
                "/login",
                data={
                    "email": researcher.email,
                    "password": TEST_PASSWORD,
                    "csrf_token": csrf_token_from(page.get_data(as_text=True)),
                },
            )
        # A page with a form makes the session hold a CSRF token, and shows it.
        page = client.get("/studies/" if name in ROLES else "/login")
        csrf = csrf_token_from(page.get_data(as_text=True))
        cookie = client.get_cookie("session")
        return Persona(app, name, cookie.value if cookie else None, csrf)

    return make
