"""A message's way to the provider and back: stored before the call, never lost on a timeout, an
error or a rate limit, retried as is, answered once, and logged with metadata always and text
only with consent (redacted and encrypted)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from study.assistant import turns
from study.assistant.client import ChatClient, ProviderTimeout, RateLimited
from study.assistant.erasure import erase_chat_texts
from study.models import ChatSession, ChatTurn, Interaction
from tests.fakes.openai_server import TEST_API_KEY
from tests.study.assistant.enrolled import enroll


@pytest.fixture
def client(openai_server):
    return ChatClient(openai_server.base_url, TEST_API_KEY, timeout=2)


def chat_of(session, trial, clock, arm="instruct", code="P-CHAT01", **consent):
    participant = enroll(session, trial, arm, code=code, now=clock.now(), **consent)
    return turns.chat_for(session, participant, trial)


def say(session, vault, chat, client, clock, text, *, stream=True):
    turn = turns.submit(session, vault, chat, text, now=clock.now())
    session.commit()
    return turn, "".join(turns.respond(session, vault, chat, turn.id, client, clock, stream=stream))


def interactions(session, participant):
    session.expire_all()
    return session.exec(
        select(Interaction)
        .where(Interaction.participant_id == participant.id)
        .order_by(Interaction.id)
    ).all()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_message_and_its_reply_are_logged_with_every_metadata_field(
    session, vault, trial, clock, client, openai_server, stream
):
    chat = chat_of(session, trial, clock)
    openai_server.reply("Walking counts too.", prompt_tokens=40, completion_tokens=4)
    turn, reply = say(session, vault, chat, client, clock, "Does walking count?", stream=stream)
    assert reply == "Walking counts too."
    user, assistant = interactions(session, chat.participant)
    conversation = session.get(ChatSession, turn.chat_session_id)
    for logged in (user, assistant):
        assert logged.session_id == conversation.key
        assert logged.arm_id == chat.arm.id and logged.source == "proxy"
        assert logged.prompt_version == chat.assistant.prompt_version
        assert logged.model == "llama-3.1-8b-instruct"
    assert (user.role, user.occurred_at, user.latency_ms) == ("user", clock.now(), None)
    assert assistant.role == "assistant"
    assert (assistant.prompt_tokens, assistant.completion_tokens) == (40, 4)
    assert assistant.latency_ms is not None and assistant.latency_ms >= 0


def test_without_consent_only_metadata_is_logged(session, vault, trial, clock, client):
    chat = chat_of(session, trial, clock, store_chat_content=False)
    say(session, vault, chat, client, clock, "Hello there")
    assert [i.content_encrypted for i in interactions(session, chat.participant)] == [None, None]


def test_with_consent_the_text_is_redacted_and_encrypted_and_absent_from_the_raw_database(
    session, vault, trial, clock, client, openai_server
):
    chat = chat_of(session, trial, clock, store_chat_content=True)
    secret = "Marmaduke the tortoise, call me on +44 7700 900461 or mail ada.quist@example.org"
    openai_server.reply("Marmaduke sounds lovely.")
    say(session, vault, chat, client, clock, secret)
    user, assistant = interactions(session, chat.participant)
    assert vault.decrypt(user.content_encrypted) == (
        "Marmaduke the tortoise, call me on [phone] or mail [email]"
    )
    assert vault.decrypt(assistant.content_encrypted) == "Marmaduke sounds lovely."
    assert not _raw_database_contains(session, ["Marmaduke", "7700 900461", "ada.quist"])


def _raw_database_contains(session, needles: list[str]) -> bool:
    """Every text and binary value of every table, as the database holds them."""
    engine = session.get_bind()
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value)
                    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
                    if any(needle in text for needle in needles):
                        return True
    return False


@pytest.mark.parametrize(
    ("script", "error", "kind"),
    [
        (lambda server: server.fail(500, "boom"), turns.AssistantError, "provider"),
        (lambda server: server.fail(429, retry_after="20"), RateLimited, "rate_limited"),
        (lambda server: server.stall(5), ProviderTimeout, "timeout"),
    ],
    ids=["server-error", "rate-limit", "timeout"],
)
def test_a_failed_call_keeps_the_message_and_a_retry_sends_it_again(
    session, vault, trial, clock, openai_server, script, error, kind
):
    client = ChatClient(openai_server.base_url, TEST_API_KEY, timeout=0.3)
    chat = chat_of(session, trial, clock)
    turn = turns.submit(session, vault, chat, "Please remember my question", now=clock.now())
    session.commit()
    script(openai_server)
    with pytest.raises(error):
        list(turns.respond(session, vault, chat, turn.id, client, clock))
    session.expire_all()
    failed = session.get(ChatTurn, turn.id)
    assert (failed.status, failed.error, failed.attempts) == ("failed", kind, 1)
    assert vault.decrypt(failed.message_encrypted) == "Please remember my question"
    assert [t.status for t in turns.transcript(session, vault, chat, clock.now())] == ["failed"]

    reply = "".join(turns.respond(session, vault, chat, turn.id, client, clock))
    assert reply == "You said: Please remember my question"
    assert [r.last_user_message for r in openai_server.requests] == [
        "Please remember my question"
    ] * 2
    assert [i.role for i in interactions(session, chat.participant)] == ["user", "assistant"]


def test_a_turn_is_answered_once_even_if_asked_twice(session, vault, trial, clock, client):
    chat = chat_of(session, trial, clock)
    turn, _ = say(session, vault, chat, client, clock, "Once")
    with pytest.raises(turns.TurnUnavailable):
        list(turns.respond(session, vault, chat, turn.id, client, clock))
    second = turns.submit(session, vault, chat, "Twice?", now=clock.now())
    session.commit()
    turns.claim(session, chat, second.id, now=clock.now())
    session.commit()
    with pytest.raises(turns.TurnUnavailable):
        turns.claim(session, chat, second.id, now=clock.now())
    # A claim whose worker died is given up after STALE_CLAIM.
    later = clock.now() + turns.STALE_CLAIM + timedelta(seconds=1)
    assert turns.claim(session, chat, second.id, now=later).attempts == 2


def test_a_participant_cannot_claim_another_participants_turn(session, vault, trial, clock):
    alice = chat_of(session, trial, clock, code="P-ALICE1")
    bob = chat_of(session, trial, clock, code="P-BOB001")
    turn = turns.submit(session, vault, alice, "Alice's message", now=clock.now())
    session.commit()
    with pytest.raises(turns.TurnUnavailable):
        turns.claim(session, bob, turn.id, now=clock.now())
    assert turns.transcript(session, vault, bob, clock.now()) == []


def test_a_consumer_that_stops_reading_leaves_the_turn_retryable(
    session, vault, trial, clock, client, openai_server
):
    chat = chat_of(session, trial, clock)
    turn = turns.submit(session, vault, chat, "Tell me a long story", now=clock.now())
    session.commit()
    openai_server.reply("Once upon a time", chunks=["Once", " upon", " a time"])
    pieces = turns.respond(session, vault, chat, turn.id, client, clock)
    assert next(pieces) == "Once"
    pieces.close()  # the browser went away mid-reply
    session.expire_all()
    assert session.get(ChatTurn, turn.id).status == "failed"
    assert session.get(ChatTurn, turn.id).error == "interrupted"


def test_the_conversation_so_far_is_sent_within_a_session_and_not_after_it_closes(
    session, vault, trial, clock, client, openai_server
):
    chat = chat_of(session, trial, clock)
    say(session, vault, chat, client, clock, "First")
    clock.advance(timedelta(minutes=10))
    say(session, vault, chat, client, clock, "Second")
    assert len(openai_server.requests[-1].body["messages"]) == 4  # system, First, reply, Second
    first_session = interactions(session, chat.participant)[0].session_id

    clock.advance(turns.SESSION_IDLE)
    say(session, vault, chat, client, clock, "Third")
    assert len(openai_server.requests[-1].body["messages"]) == 2
    logged = interactions(session, chat.participant)
    assert logged[-1].session_id != first_session
    # The closed conversation's text is gone from the chat's own tables.
    closed = session.exec(select(ChatTurn).where(ChatTurn.status == "answered")).all()
    texts = [(t.message_encrypted, t.reply_encrypted) for t in closed]
    assert texts[:2] == [(None, None), (None, None)] and texts[2][0] is not None


def test_starting_a_new_conversation_keeps_an_unanswered_message(
    session, vault, trial, clock, openai_server
):
    chat = chat_of(session, trial, clock)
    turn = turns.submit(session, vault, chat, "Still waiting", now=clock.now())
    session.commit()
    fresh = turns.start_new_conversation(session, chat, clock.now())
    session.commit()
    assert session.get(ChatTurn, turn.id).chat_session_id == fresh.id
    assert [t.message for t in turns.transcript(session, vault, chat, clock.now())] == [
        "Still waiting"
    ]


def test_the_reflective_arm_is_sent_the_participants_notes_and_goals(
    session, vault, trial, clock, client, openai_server
):
    from study.assistant.goals import goals
    from study.assistant.memory import notes

    chat = chat_of(session, trial, clock, arm="reflective")
    notes.add(session, vault, chat.participant, "I live with my dog Biscuit", now=clock.now())
    goals.add(session, vault, chat.participant, "Call my brother every Sunday", now=clock.now())
    session.commit()
    say(session, vault, chat, client, clock, "Hi")
    system = openai_server.requests[-1].body["messages"][0]["content"]
    assert "- I live with my dog Biscuit" in system
    assert "- Call my brother every Sunday" in system


def test_empty_and_overlong_messages_are_refused_before_anything_is_stored(
    session, vault, trial, clock
):
    chat = chat_of(session, trial, clock)
    for text in ["   ", "x" * (turns.MAX_MESSAGE_LENGTH + 1)]:
        with pytest.raises(turns.MessageRefused):
            turns.submit(session, vault, chat, text, now=clock.now())
    assert session.exec(select(ChatTurn)).all() == []


def test_no_chat_for_the_control_arm_or_a_withdrawn_participant(session, trial, clock):
    control = enroll(session, trial, "control", code="P-CTRL01", now=clock.now())
    assert turns.chat_for(session, control, trial) is None
    gone = enroll(session, trial, "instruct", code="P-GONE01", now=clock.now())
    gone.status = "withdrawn"
    assert turns.chat_for(session, gone, trial) is None


def test_erasing_a_participants_chat_texts_leaves_nothing_readable_and_spares_others(
    session, vault, trial, clock, client
):
    from study.assistant.goals import goals
    from study.assistant.memory import notes
    from study.models import MemoryNote, ParticipantGoal

    alice = chat_of(session, trial, clock, arm="reflective", code="P-ALICE1")
    bob = chat_of(session, trial, clock, arm="reflective", code="P-BOB001")
    for chat in (alice, bob):
        say(session, vault, chat, client, clock, "Some words")
        notes.add(session, vault, chat.participant, "A note", now=clock.now())
        goals.add(session, vault, chat.participant, "A goal", now=clock.now())
    pending = turns.submit(session, vault, alice, "Unanswered", now=clock.now())
    session.commit()

    counts = erase_chat_texts(session, alice.participant)
    session.commit()
    assert counts == {"chat_turns": 2, "memory_notes": 1, "goals": 1}
    mine = ChatTurn.participant_id == alice.participant.id
    alice_turns = session.exec(select(ChatTurn).where(mine))
    assert {(t.message_encrypted, t.reply_encrypted) for t in alice_turns} == {(None, None)}
    assert session.get(ChatTurn, pending.id).message_encrypted is None
    assert [n.participant_id for n in session.exec(select(MemoryNote))] == [bob.participant.id]
    assert [g.participant_id for g in session.exec(select(ParticipantGoal))] == [bob.participant.id]
    assert [t.message for t in turns.transcript(session, vault, bob, clock.now())] == ["Some words"]


def test_the_tick_closes_idle_conversations_of_participants_who_never_come_back(
    session, vault, trial, clock, client
):
    chat = chat_of(session, trial, clock)
    say(session, vault, chat, client, clock, "Just once")
    assert turns.close_idle_conversations(session, now=clock.now()) == 0
    clock.advance(turns.SESSION_IDLE - timedelta(seconds=1))
    assert turns.close_idle_conversations(session, now=clock.now()) == 0
    clock.advance(timedelta(seconds=1))
    assert turns.close_idle_conversations(session, now=clock.now()) == 1
    session.commit()
    (conversation,) = session.exec(select(ChatSession)).all()
    assert conversation.ended_at == conversation.last_activity_at
    (turn,) = session.exec(select(ChatTurn)).all()
    assert (turn.message_encrypted, turn.reply_encrypted) == (None, None)
    assert turns.close_idle_conversations(session, now=clock.now()) == 0


def test_the_scheduler_runs_the_idle_close_on_every_tick(
    session, vault, trial, clock, client, settings
):
    from study.scheduler import standard_tasks, tick_once

    chat = chat_of(session, trial, clock)
    say(session, vault, chat, client, clock, "Then silence")
    session.commit()
    clock.advance(turns.SESSION_IDLE)

    tick_once(session.get_bind(), clock, standard_tasks(settings))

    session.expire_all()
    (conversation,) = session.exec(select(ChatSession)).all()
    assert conversation.ended_at is not None
    (turn,) = session.exec(select(ChatTurn)).all()
    assert (turn.message_encrypted, turn.reply_encrypted) == (None, None)
