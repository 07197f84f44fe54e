"""A participant's chat with their arm's assistant: conversations, and each message's way from
the participant to the provider and back, with every turn in the interaction log.

The message is stored (encrypted) and committed before the provider is called, so a timeout, an
HTTP error or a rate limit leaves it `failed`, shown with its reason and retried as is. A turn is
claimed atomically before it is sent, so a double tap or two open tabs never ask twice.

A conversation closes after `SESSION_IDLE` without a message, or when the participant starts a
new one; its text is then blanked here (messages not yet answered move to the next
conversation). The research record is the interaction log, which keeps the text only with
consent (log.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from ..clock import Clock
from ..enrollment import arm_of
from ..models import Arm, ChatSession, ChatTurn, Participant
from ..pii import PiiVault
from ..protocol import Protocol
from . import memory
from .client import AssistantError, ChatClient, Completion
from .conversation import ArmAssistant, Exchange, arm_assistant, build_request
from .goals import goals
from .log import record_interaction

SESSION_IDLE = timedelta(minutes=30)
# An `answering` claim older than this was lost (a worker died mid-call): the turn may be retried.
STALE_CLAIM = timedelta(minutes=5)
MAX_MESSAGE_LENGTH = 4000
UNANSWERED = ("pending", "failed")


class MessageRefused(ValueError):
    """A message that cannot be sent as written; the text is for the participant."""


class TurnUnavailable(LookupError):
    """The turn is not this participant's, or is already answered or being answered."""


@dataclass(frozen=True)
class Chat:
    """Who is chatting with which assistant."""

    participant: Participant
    arm: Arm
    assistant: ArmAssistant

    @property
    def actor(self) -> str:
        return f"participant:{self.participant.code}"


def chat_for(session: Session, participant: Participant, protocol: Protocol) -> Chat | None:
    """The participant's chat, or None if they are not taking part or their arm has none."""
    if participant.status != "enrolled":
        return None
    arm = arm_of(session, participant)
    assistant = arm_assistant(protocol, arm.key) if arm is not None else None
    return None if assistant is None else Chat(participant, arm, assistant)


# --- conversations ------------------------------------------------------------------------------


def open_conversation(session: Session, chat: Chat, now: datetime) -> ChatSession | None:
    """The participant's conversation still open at `now`; an idle one is closed first."""
    current = session.exec(
        select(ChatSession).where(
            ChatSession.participant_id == chat.participant.id, col(ChatSession.ended_at).is_(None)
        )
    ).first()
    if current is not None and now - current.last_activity_at >= SESSION_IDLE:
        close_conversation(session, current, current.last_activity_at)
        return None
    return current


def conversation(session: Session, chat: Chat, now: datetime) -> ChatSession:
    """The open conversation, or a new one (taking over any messages not yet answered)."""
    current = open_conversation(session, chat, now)
    if current is not None:
        return current
    current = ChatSession(
        participant_id=chat.participant.id,
        arm_id=chat.arm.id,
        key=uuid.uuid4().hex,
        started_at=now,
        last_activity_at=now,
    )
    session.add(current)
    session.flush()
    session.execute(
        update(ChatTurn)
        .where(
            col(ChatTurn.participant_id) == chat.participant.id,
            col(ChatTurn.status).in_(UNANSWERED),
            col(ChatTurn.chat_session_id) != current.id,
        )
        .values(chat_session_id=current.id)
    )
    return current


def close_conversation(session: Session, chat_session: ChatSession, at: datetime) -> None:
    """End a conversation and blank its answered turns' text (unanswered ones are kept)."""
    chat_session.ended_at = at
    session.add(chat_session)
    session.execute(
        update(ChatTurn)
        .where(
            col(ChatTurn.chat_session_id) == chat_session.id,
            col(ChatTurn.status).not_in(UNANSWERED),
        )
        .values(message_encrypted=None, reply_encrypted=None)
    )
    session.flush()


def close_idle_conversations(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Close up to `limit` conversations idle for SESSION_IDLE, blanking their text, also for
    participants who never come back to the chat. For the scheduler's tick; returns how many."""
    idle = session.exec(
        select(ChatSession)
        .where(
            col(ChatSession.ended_at).is_(None),
            col(ChatSession.last_activity_at) <= now - SESSION_IDLE,
        )
        .order_by(col(ChatSession.last_activity_at))
        .limit(limit)
    ).all()
    for chat_session in idle:
        close_conversation(session, chat_session, chat_session.last_activity_at)
    return len(idle)


def start_new_conversation(session: Session, chat: Chat, now: datetime) -> ChatSession:
    """The participant asked for a fresh start: close the open conversation, begin another."""
    current = open_conversation(session, chat, now)
    if current is not None:
        close_conversation(session, current, now)
    return conversation(session, chat, now)


@dataclass(frozen=True)
class ShownTurn:
    """A turn as the chat page shows it."""

    id: int
    message: str
    reply: str
    status: str
    error: str


def transcript(
    session: Session, vault: PiiVault, chat: Chat, now: datetime
) -> list[ShownTurn]:
    """The open conversation's turns, oldest first (empty when none is open)."""
    current = open_conversation(session, chat, now)
    if current is None:
        # Unanswered messages of a closed conversation are still the participant's to retry.
        rows = session.exec(
            select(ChatTurn)
            .where(
                ChatTurn.participant_id == chat.participant.id,
                col(ChatTurn.status).in_(UNANSWERED),
            )
            .order_by(col(ChatTurn.id))
        )
    else:
        rows = session.exec(
            select(ChatTurn)
            .where(ChatTurn.chat_session_id == current.id)
            .order_by(col(ChatTurn.id))
        )
    return [
        ShownTurn(
            turn.id,
            vault.decrypt(turn.message_encrypted) if turn.message_encrypted else "",
            vault.decrypt(turn.reply_encrypted) if turn.reply_encrypted else "",
            turn.status,
            turn.error,
        )
        for turn in rows
    ]


# --- one message --------------------------------------------------------------------------------


def submit(
    session: Session, vault: PiiVault, chat: Chat, text: str, *, now: datetime
) -> ChatTurn:
    """Store the participant's message and log their turn; the caller commits before asking
    the provider. MessageRefused if empty or too long."""
    text = (text or "").strip()
    if not text:
        raise MessageRefused("Please write a message first.")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise MessageRefused(
            f"Please keep a message to {MAX_MESSAGE_LENGTH} characters (this one has {len(text)})."
        )
    current = conversation(session, chat, now)
    current.last_activity_at = now
    turn = ChatTurn(
        chat_session_id=current.id,
        participant_id=chat.participant.id,
        key=uuid.uuid4().hex,
        message_encrypted=vault.encrypt(text),
        sent_at=now,
    )
    session.add_all([current, turn])
    session.flush()
    _log(session, vault, chat, turn, current, "user", now, text)
    return turn


def claim(session: Session, chat: Chat, turn_id: int, *, now: datetime) -> ChatTurn:
    """Mark an unanswered turn of this participant `answering`; TurnUnavailable otherwise.
    Atomic: of two requests for one turn, one wins."""
    lost = (col(ChatTurn.status) == "answering") & (col(ChatTurn.claimed_at) < now - STALE_CLAIM)
    claimed = session.execute(
        update(ChatTurn)
        .where(
            col(ChatTurn.id) == turn_id,
            col(ChatTurn.participant_id) == chat.participant.id,
            or_(col(ChatTurn.status).in_(UNANSWERED), lost),
        )
        .values(status="answering", claimed_at=now, attempts=ChatTurn.attempts + 1, error="")
    ).rowcount
    if claimed != 1:
        raise TurnUnavailable(f"turn {turn_id} cannot be answered now")
    turn = session.get(ChatTurn, turn_id)
    session.refresh(turn)
    return turn


def request_for(session: Session, vault: PiiVault, chat: Chat, turn: ChatTurn):
    """The provider request for `turn`: the earlier exchanges of its conversation, the
    participant's notes and goals, as the arm's policy allows."""
    earlier = session.exec(
        select(ChatTurn)
        .where(
            ChatTurn.chat_session_id == turn.chat_session_id,
            ChatTurn.status == "answered",
            col(ChatTurn.id) < turn.id,
        )
        .order_by(col(ChatTurn.id))
    )
    history = [
        Exchange(vault.decrypt(t.message_encrypted), vault.decrypt(t.reply_encrypted))
        for t in earlier
        if t.message_encrypted and t.reply_encrypted
    ]
    assistant, participant = chat.assistant, chat.participant
    return build_request(
        assistant,
        vault.decrypt(turn.message_encrypted),
        history=history,
        notes=memory.notes.texts(session, vault, participant) if assistant.keeps_notes else (),
        goals=goals.texts(session, vault, participant) if assistant.takes_goals else (),
    )


def record_reply(
    session: Session,
    vault: PiiVault,
    chat: Chat,
    turn: ChatTurn,
    completion: Completion,
    *,
    now: datetime,
) -> None:
    """Store the reply and log the assistant's turn with its latency, tokens and model."""
    turn.status, turn.error, turn.answered_at = "answered", "", now
    turn.reply_encrypted = vault.encrypt(completion.text)
    current = session.get(ChatSession, turn.chat_session_id)
    current.last_activity_at = max(current.last_activity_at, now)
    session.add_all([turn, current])
    session.flush()
    _log(session, vault, chat, turn, current, "assistant", now, completion.text, completion)


def record_failure(session: Session, turn: ChatTurn, error: AssistantError | str) -> None:
    """The call failed: the message stays, `failed`, to be retried."""
    turn.status = "failed"
    turn.error = error if isinstance(error, str) else error.kind
    session.add(turn)
    session.flush()


def respond(
    session: Session,
    vault: PiiVault,
    chat: Chat,
    turn_id: int,
    client: ChatClient,
    clock: Clock,
    *,
    stream: bool = True,
) -> Iterator[str]:
    """Claim the turn, ask the provider, record the outcome: yields the reply's pieces.

    Commits three times, so that no database transaction is open while the provider thinks:
    after the claim, and after the reply or the failure. A provider failure is recorded and
    then re-raised (AssistantError); a consumer that stops early leaves the turn `failed`.
    """
    turn = claim(session, chat, turn_id, now=clock.now())
    request = request_for(session, vault, chat, turn)
    session.commit()
    completion = None
    try:
        if stream:
            pieces = client.stream(request)
            yield from pieces
            completion = pieces.completion
        else:
            completion = client.complete(request)
            yield completion.text
    except AssistantError as exc:
        record_failure(session, turn, exc)
        session.commit()
        raise
    finally:
        if completion is None and session.get(ChatTurn, turn_id).status == "answering":
            record_failure(session, turn, "interrupted")
            session.commit()
    record_reply(session, vault, chat, turn, completion, now=clock.now())
    session.commit()


def _log(session, vault, chat: Chat, turn, chat_session, role, now, text, completion=None):
    record_interaction(
        session,
        vault=vault,
        study_id=chat.participant.study_id,
        participant=chat.participant,
        event_id=f"{turn.key}.{role}",
        session_id=chat_session.key,
        role=role,
        occurred_at=now,
        source="proxy",
        content=text,
        latency_ms=completion.latency_ms if completion else None,
        prompt_tokens=completion.prompt_tokens if completion else None,
        completion_tokens=completion.completion_tokens if completion else None,
        model=completion.model if completion else chat.assistant.spec.model,
        prompt_version=chat.assistant.prompt_version,
        arm_id=chat.arm.id,
    )
