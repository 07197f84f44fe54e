"""The chat page over HTTP: reached from the portal, streamed replies, clear errors that keep the
message, no chat for the control arm, CSRF on every post, and participant A never reaching B's
chat, notes or goals."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from study.models import ChatTurn, Interaction, MemoryNote
from study.protocol.registry import register_protocol
from tests.conftest import csrf_token_from
from tests.fakes.openai_server import TEST_API_KEY, FakeOpenAI
from tests.study.assistant.enrolled import copy_examples, enroll, protocol_using


@pytest.fixture
def endpoint():
    with FakeOpenAI(api_key=TEST_API_KEY) as server:
        yield server


@pytest.fixture
def db(app):
    with Session(app.extensions["flourish"].engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def trial(app, db, endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOURISH_ARM_INSTRUCT_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("FLOURISH_ARM_REFLECTIVE_API_KEY", TEST_API_KEY)
    app.config["FLOURISH_ASSISTANT_TIMEOUT"] = 1.0
    protocol = protocol_using(copy_examples(tmp_path), endpoint.base_url)
    register_protocol(db, protocol, actor="test")
    db.commit()
    return protocol


def signed_in(client, db, trial, clock, arm="instruct", code="P-WEB001", **consent):
    participant = enroll(db, trial, arm, code=code, now=clock.now(), **consent)
    with client.session_transaction() as browser:
        browser["participant"] = participant.code
    return participant


def token(client, path="/p/chat/") -> str:
    return csrf_token_from(client.get(path).get_data(as_text=True))


def send(client, text, *, csrf=None):
    return client.post(
        "/p/chat/messages",
        data={"message": text, "csrf_token": csrf or token(client)},
        headers={"Accept": "application/json"},
    )


def stream(client, url, csrf):
    response = client.post(url, headers={"Accept": "text/event-stream", "X-CSRFToken": csrf})
    assert response.mimetype == "text/event-stream"
    events = []
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_the_portal_links_to_the_chat_and_the_signed_link_opens_it(app, db, trial, clock):
    participant = enroll(db, trial, "instruct", code="P-WEB001", now=clock.now())
    client = app.test_client()
    with app.test_request_context():
        from study.web.participate import portal_path

        path = portal_path(participant.code)
    portal = client.get(path, follow_redirects=True).get_data(as_text=True)
    assert 'href="/p/chat/"' in portal
    page = client.get("/p/chat/")
    assert page.status_code == 200
    assert "Chat with your study assistant" in page.get_data(as_text=True)


def test_a_message_is_stored_then_the_reply_streams_in_pieces(client, db, trial, clock, endpoint):
    participant = signed_in(client, db, trial, clock)
    csrf = token(client)
    sent = send(client, "How do I start running?", csrf=csrf)
    assert sent.status_code == 201
    turn_id, reply_url = sent.json["turn"], sent.json["reply_url"]
    assert db.get(ChatTurn, turn_id).status == "pending"  # stored before the provider is asked

    endpoint.reply("Start with a walk.", chunks=["Start", " with", " a walk."])
    events = stream(client, reply_url, csrf)
    assert events == [
        ("piece", {"text": "Start"}),
        ("piece", {"text": " with"}),
        ("piece", {"text": " a walk."}),
        ("done", {"turn": turn_id}),
    ]
    page = client.get("/p/chat/").get_data(as_text=True)
    assert "How do I start running?" in page and "Start with a walk." in page
    roles = db.exec(
        select(Interaction.role).where(Interaction.participant_id == participant.id)
    ).all()
    assert roles == ["user", "assistant"]


@pytest.mark.parametrize(
    ("script", "says", "page_says"),
    [
        (lambda server: server.fail(500), "not available right now", "not available right now"),
        (
            lambda server: server.fail(429, retry_after="30"),
            "busy at the moment. Your message is saved: please try again in about 30 seconds",
            "busy at the moment",  # the page, shown later, cannot know how long is left
        ),
        (lambda server: server.stall(5), "took too long to answer", "took too long to answer"),
    ],
    ids=["server-error", "rate-limit", "timeout"],
)
def test_errors_are_explained_and_the_message_is_kept_for_a_retry(
    client, db, trial, clock, endpoint, script, says, page_says
):
    signed_in(client, db, trial, clock)
    csrf = token(client)
    sent = send(client, "Keep this message safe", csrf=csrf)
    script(endpoint)
    ((name, data),) = stream(client, sent.json["reply_url"], csrf)
    assert name == "error" and says in data["message"]
    assert "Your message is saved" in data["message"]

    page = client.get("/p/chat/").get_data(as_text=True)
    assert "Keep this message safe" in page and page_says in page and "Try again" in page
    assert stream(client, sent.json["reply_url"], csrf)[-1] == ("done", {"turn": sent.json["turn"]})
    assert "You said: Keep this message safe" in client.get("/p/chat/").get_data(as_text=True)


def test_a_missing_api_key_is_explained_and_keeps_the_message(
    client, db, trial, clock, monkeypatch
):
    monkeypatch.delenv("FLOURISH_ARM_INSTRUCT_API_KEY")
    signed_in(client, db, trial, clock)
    csrf = token(client)
    sent = send(client, "Anyone there?", csrf=csrf)
    ((name, data),) = stream(client, sent.json["reply_url"], csrf)
    assert name == "error" and "not available right now" in data["message"]
    assert db.get(ChatTurn, sent.json["turn"]).status == "pending"


def test_without_javascript_the_form_posts_and_the_page_shows_the_answer(
    client, db, trial, clock
):
    signed_in(client, db, trial, clock)
    form = {"message": "Plain form", "csrf_token": token(client)}
    response = client.post("/p/chat/messages", data=form)
    assert response.status_code == 303
    assert "You said: Plain form" in client.get("/p/chat/").get_data(as_text=True)


def test_an_empty_message_is_refused_with_a_reason(client, db, trial, clock):
    signed_in(client, db, trial, clock)
    refused = send(client, "   ")
    assert refused.status_code == 400 and refused.json["error"] == "Please write a message first."


def test_every_post_needs_its_csrf_token(client, db, trial, clock):
    signed_in(client, db, trial, clock)
    sent = send(client, "Hello")
    for url, data in [
        ("/p/chat/messages", {"message": "no token"}),
        (sent.json["reply_url"], {}),
        ("/p/chat/new", {}),
    ]:
        assert client.post(url, data=data).status_code == 400
    assert len(db.exec(select(ChatTurn)).all()) == 1


def test_the_control_arm_has_no_chat_and_its_urls_are_404(client, db, trial, clock):
    signed_in(client, db, trial, clock, arm="control", code="P-CTRL01")
    assert "/p/chat/" not in client.get("/p/").get_data(as_text=True)
    csrf = csrf_token_from(client.get("/p/withdraw").get_data(as_text=True))
    assert client.get("/p/chat/").status_code == 404
    assert client.get("/p/chat/memory").status_code == 404
    sent = client.post("/p/chat/messages", data={"message": "x", "csrf_token": csrf})
    assert sent.status_code == 404


def test_without_a_portal_session_there_is_no_chat(client, trial):
    assert client.get("/p/chat/").status_code == 404


def test_participant_a_can_never_read_or_post_to_bs_chat(app, db, trial, clock, endpoint):
    alice, bob = app.test_client(), app.test_client()
    signed_in(alice, db, trial, clock, arm="reflective", code="P-ALICE1")
    signed_in(bob, db, trial, clock, arm="reflective", code="P-BOB001")
    csrf_b = token(bob)
    sent = send(bob, "Bobs private worry", csrf=csrf_b)
    stream(bob, sent.json["reply_url"], csrf_b)
    bob.post("/p/chat/memory", data={"text": "Bobs note", "csrf_token": csrf_b})
    note_id = db.exec(select(MemoryNote.id)).one()

    csrf_a = token(alice)
    assert "Bobs private worry" not in alice.get("/p/chat/").get_data(as_text=True)
    headers = {"Accept": "text/event-stream", "X-CSRFToken": csrf_a}
    ((name, _),) = stream(alice, sent.json["reply_url"], csrf_a)
    assert name == "error"  # not Alice's turn: nothing is sent to the provider
    no_script = alice.post(sent.json["reply_url"], headers=headers | {"Accept": "text/html"})
    assert no_script.status_code == 303
    assert alice.get(f"/p/chat/memory?from={sent.json['turn']}").status_code == 404
    assert "Bobs note" not in alice.get("/p/chat/memory").get_data(as_text=True)
    for action in ("save", "delete"):
        response = alice.post(
            f"/p/chat/memory/{note_id}",
            data={"action": action, "text": "Alice was here", "csrf_token": csrf_a},
        )
        assert response.status_code == 404
    db.expire_all()
    assert len(endpoint.requests) == 1
    assert "Bobs note" in bob.get("/p/chat/memory").get_data(as_text=True)
    assert "Bobs private worry" in bob.get("/p/chat/").get_data(as_text=True)


def test_memory_and_goals_pages_follow_the_arm(client, db, trial, clock):
    signed_in(client, db, trial, clock)  # instruct: session memory, no goals
    assert client.get("/p/chat/memory").status_code == 404
    assert client.get("/p/chat/goals").status_code == 404


def test_the_participant_keeps_edits_and_deletes_notes_and_goals(
    client, db, trial, clock, endpoint
):
    signed_in(client, db, trial, clock, arm="reflective", code="P-REFL01")
    csrf = token(client)
    sent = send(client, "I like birds", csrf=csrf)
    endpoint.reply("Robins visit in winter.")
    stream(client, sent.json["reply_url"], csrf)
    kept = client.get(f"/p/chat/memory?from={sent.json['turn']}").get_data(as_text=True)
    assert "Robins visit in winter." in kept  # offered for editing before it is saved
    kept_form = {"text": "Robins visit", "source": "chat", "csrf_token": csrf}
    client.post("/p/chat/memory", data=kept_form)
    client.post("/p/chat/goals", data={"text": "Walk to the park", "csrf_token": csrf})
    (note,) = db.exec(select(MemoryNote)).all()
    assert note.source == "chat"
    edit = {"text": "Robins visit my garden", "csrf_token": csrf}
    client.post(f"/p/chat/memory/{note.id}", data=edit)
    assert "Robins visit my garden" in client.get("/p/chat/memory").get_data(as_text=True)

    second = send(client, "Anything new?", csrf=csrf)
    stream(client, second.json["reply_url"], csrf)
    system = endpoint.requests[-1].body["messages"][0]["content"]
    assert "- Robins visit my garden" in system and "- Walk to the park" in system

    too_long = client.post("/p/chat/goals", data={"text": "x" * 301, "csrf_token": csrf})
    assert too_long.status_code == 400 and "300 characters" in too_long.get_data(as_text=True)
    client.post(f"/p/chat/memory/{note.id}", data={"action": "delete", "csrf_token": csrf})
    assert db.exec(select(MemoryNote)).all() == []


def test_markup_in_messages_and_replies_is_shown_as_text(client, db, trial, clock, endpoint):
    signed_in(client, db, trial, clock)
    csrf = token(client)
    sent = send(client, "<script>alert('you')</script>", csrf=csrf)
    endpoint.reply("<img src=x onerror=alert(1)>")
    stream(client, sent.json["reply_url"], csrf)
    page = client.get("/p/chat/").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_chat_page_has_no_inline_script_and_keeps_the_strict_csp(client, db, trial, clock):
    signed_in(client, db, trial, clock)
    response = client.get("/p/chat/")
    html = response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["Cache-Control"] == "no-store"
    scripts = [tag for tag in html.split("<script")[1:]]
    assert scripts and all(tag.lstrip().startswith("src=") for tag in scripts)
    assert "onclick=" not in html and "onsubmit=" not in html


def test_without_javascript_a_failed_message_is_retried_with_the_form(
    client, db, trial, clock, endpoint
):
    signed_in(client, db, trial, clock)
    endpoint.fail(500)
    client.post("/p/chat/messages", data={"message": "Second try", "csrf_token": token(client)})
    page = client.get("/p/chat/").get_data(as_text=True)
    assert "not available right now" in page
    (turn,) = db.exec(select(ChatTurn)).all()
    client.post(f"/p/chat/turns/{turn.id}/reply", data={"csrf_token": csrf_token_from(page)})
    assert "You said: Second try" in client.get("/p/chat/").get_data(as_text=True)
