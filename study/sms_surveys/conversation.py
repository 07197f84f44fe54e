"""An occasion answered by text message, one item per message.

    body = start_or_resume(session, occasion=, participant=, protocol=, invitation=body,
                           purpose="invitation", now=now)      # the dispatcher's seam
    reply = answer(context)                                     # the inbound handler

`start_or_resume` opens the occasion's conversation (or finds it) in the dispatcher's
transaction and returns the invitation with the question the conversation is waiting for
appended; the survey link stays in the text, so the participant may still answer on the web and
the dispatcher's crash check (which looks for the exact text, link included) is unchanged.

`answer` takes a participant's reply: a valid number is stored as an `ItemResponse` (its
`Response` is `partial`, then `complete`, channel `sms`, consent version in force) and the next
question is the reply; anything else is re-asked and nothing is stored. After the last item the
occasion is `completed`, its pending reminders are cancelled, and the participant is thanked.

A conversation lives until its occasion closes (`ConversationPolicy.idle_timeout` can shorten
that); a reply after that is told the questionnaire has closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from consent import ConsentError, version_in_force
from instruments.schema import Instrument
from instruments.translations import LocalizedInstrument, MissingWordingError, localize
from study import audit
from study.channels import InboundContext, Reply
from study.models import (
    ItemResponse,
    Occasion,
    OutboundMessage,
    Participant,
    Response,
    SmsConversation,
)
from study.protocol import Protocol

from . import prompts

CLOSED_OCCASIONS = ("completed", "cancelled", "missed")


@dataclass(frozen=True)
class ConversationPolicy:
    """How long a conversation waits. `idle_timeout` None: until the occasion closes; else also
    at most this long after the last question we asked."""

    idle_timeout: timedelta | None = None

    def deadline(self, occasion: Occasion, now: datetime) -> datetime:
        if self.idle_timeout is None:
            return occasion.closes_at
        return min(occasion.closes_at, now + self.idle_timeout)


DEFAULT_POLICY = ConversationPolicy()


# --- which occasions ------------------------------------------------------------------------------


def sms_instruments(
    occasion: Occasion, protocol: Protocol, language: str
) -> list[tuple[Instrument, LocalizedInstrument]] | None:
    """The occasion's instruments, each with its wording in `language`, if every one of them
    may be answered by SMS (`sms.suitable`) and has wording; else None."""
    chosen = []
    for instrument_id in occasion.instruments:
        try:
            instrument = protocol.instrument(instrument_id)
        except KeyError:
            return None
        if not instrument.sms.suitable:
            return None
        try:
            chosen.append((instrument, localize(instrument, language)))
        except MissingWordingError:
            return None
    return chosen or None


# --- the dispatcher's seam ------------------------------------------------------------------------


def start_or_resume(
    session: Session,
    *,
    occasion: Occasion,
    participant: Participant,
    protocol: Protocol,
    invitation: str,
    purpose: str,
    now: datetime,
    policy: ConversationPolicy = DEFAULT_POLICY,
) -> str:
    """The SMS to send for `occasion`: `invitation` with the next question appended, when the
    occasion can be answered by SMS; `invitation` unchanged otherwise. In the caller's
    transaction: opens the conversation (once per occasion) or refreshes its last activity."""
    language = participant.language or prompts.DEFAULT_LANGUAGE
    instruments = sms_instruments(occasion, protocol, language)
    if instruments is None:
        return invitation
    conversation = session.exec(
        select(SmsConversation).where(SmsConversation.occasion_id == occasion.id)
    ).first()
    if conversation is None:
        conversation = SmsConversation(
            participant_id=participant.id,
            occasion_id=occasion.id,
            language=language,
            started_at=now,
            last_activity_at=now,
            expires_at=policy.deadline(occasion, now),
        )
    elif conversation.status != "active":
        return invitation
    question = _next_question(session, conversation, instruments)
    if question is None:
        return invitation
    conversation.last_activity_at = now
    conversation.expires_at = max(conversation.expires_at, policy.deadline(occasion, now))
    session.add(conversation)
    session.flush()
    key = "reminder" if purpose == "reminder" else "invitation"
    return prompts.text(language, key, invitation=invitation, question=prompts.ask(question))


# --- the inbound handler --------------------------------------------------------------------------


def answer(context: InboundContext, policy: ConversationPolicy = DEFAULT_POLICY) -> Reply | None:
    """Take a reply to an SMS survey; None when the sender has no conversation to answer."""
    participant, session = context.participant, context.session
    if participant is None:
        return None
    if context.replay:
        # A provider retry of a message we already took: the same reply, nothing changed.
        earlier = session.exec(
            select(SmsConversation).where(
                SmsConversation.last_inbound_message_id == context.message.id
            )
        ).first()
        return Reply(earlier.last_reply, "sms_survey_repeat") if earlier is not None else None
    conversation = _current(session, participant.id)
    if conversation is None:
        return None
    occasion = session.get(Occasion, conversation.occasion_id)
    if conversation.status == "active" and not _still_open(
        session, conversation, occasion, participant, context.now
    ):
        _end(conversation, "expired", context.now)
    if conversation.status != "active":
        if conversation.status != "expired":
            return None
        return _closed(conversation, context)

    instruments = sms_instruments(occasion, context.protocol, conversation.language)
    if instruments is None:
        # The protocol was amended under the conversation: nothing left to ask by SMS.
        _end(conversation, "expired", context.now)
        return _closed(conversation, context)
    question = _next_question(session, conversation, instruments)
    if question is None:
        return _finish(session, conversation, occasion, participant, context)
    value = prompts.read_answer(context.message.body, question.item.scale)
    if value is None:
        conversation.invalid_replies += 1
        return _reply(conversation, context, prompts.reask(question), "invalid")

    instrument = instruments[conversation.instrument_index][0]
    _store(session, conversation, occasion, participant, instrument, question, value, context.now)
    following = _next_question(session, conversation, instruments)
    if following is None:
        return _finish(session, conversation, occasion, participant, context)
    conversation.last_activity_at = context.now
    conversation.expires_at = max(
        min(conversation.expires_at, occasion.closes_at), policy.deadline(occasion, context.now)
    )
    return _reply(conversation, context, prompts.ask(following), "answer")


def expire_conversations(session: Session, *, now: datetime) -> int:
    """Mark every active conversation past its deadline expired; how many. (Replies expire their
    own conversation as well; this keeps the table truthful for monitoring.)"""
    changed = session.execute(
        update(SmsConversation)
        .where(SmsConversation.status == "active", col(SmsConversation.expires_at) <= now)
        .values(status="expired", ended_at=now)
    )
    return changed.rowcount


# --- steps ----------------------------------------------------------------------------------------


def _current(session: Session, participant_id: int) -> SmsConversation | None:
    """The conversation a reply answers: the active one that asked last, else the latest."""
    rows = session.exec(
        select(SmsConversation)
        .where(SmsConversation.participant_id == participant_id)
        .order_by(col(SmsConversation.last_activity_at).desc(), col(SmsConversation.id).desc())
        .with_for_update()
    ).all()
    active = [row for row in rows if row.status == "active"]
    return (active or rows or [None])[0]


def _still_open(session, conversation, occasion, participant, now) -> bool:
    if occasion is None or occasion.status in CLOSED_OCCASIONS:
        return False
    if now >= conversation.expires_at or now >= occasion.closes_at:
        return False
    return participant.status == "enrolled"


def _next_question(
    session: Session,
    conversation: SmsConversation,
    instruments: list[tuple[Instrument, LocalizedInstrument]],
) -> prompts.Question | None:
    """Move the conversation past items already answered (here or on the web) and return the
    question it now waits for; None when every item is answered."""
    answered = _answered(session, conversation.occasion_id)
    total = sum(len(view.items) for _, view in instruments)
    before = sum(len(view.items) for _, view in instruments[: conversation.instrument_index])
    for index in range(conversation.instrument_index, len(instruments)):
        instrument, view = instruments[index]
        start = conversation.item_index if index == conversation.instrument_index else 0
        for item_index in range(start, len(view.items)):
            if (instrument.id, view.items[item_index].id) in answered:
                continue
            conversation.instrument_index, conversation.item_index = index, item_index
            return prompts.Question(
                view, view.items[item_index], before + item_index + 1, total, item_index == 0
            )
        before += len(view.items)
    conversation.instrument_index, conversation.item_index = len(instruments), 0
    return None


def _answered(session: Session, occasion_id: int) -> set[tuple[str, str]]:
    rows = session.exec(
        select(Response.instrument_id, ItemResponse.item_id)
        .join(ItemResponse, col(ItemResponse.response_id) == col(Response.id))
        .where(Response.occasion_id == occasion_id)
    ).all()
    return {(instrument_id, item_id) for instrument_id, item_id in rows}


def _store(session, conversation, occasion, participant, instrument, question, value, now) -> None:
    try:
        consent_version = version_in_force(session, participant)
    except ConsentError:
        consent_version = ""  # unreachable: _still_open required an enrolled participant
    response = session.exec(
        select(Response).where(
            Response.occasion_id == occasion.id, Response.instrument_id == instrument.id
        )
    ).first()
    if response is None:
        response = Response(
            occasion_id=occasion.id,
            participant_id=participant.id,
            instrument_id=instrument.id,
            instrument_version=instrument.version,
            language=conversation.language,
            channel="sms",
            consent_version=consent_version,
            status="partial",
            started_at=now,
        )
        session.add(response)
        session.flush()
    session.add(
        ItemResponse(
            response_id=response.id, item_id=question.item.id, value=value, answered_at=now
        )
    )
    session.flush()
    if occasion.status in ("scheduled", "sent", "opened"):
        occasion.status = "partial"
        session.add(occasion)
    answered = _answered(session, occasion.id)
    if all((instrument.id, item.id) in answered for item in instrument.items):
        response.status = "complete"
        response.submitted_at = now
        session.add(response)
        audit.record(
            session,
            f"participant:{participant.code}",
            "response.submitted",
            entity_type="response",
            entity_id=response.id,
            details={"channel": "sms", "instrument": instrument.id, "occasion": occasion.id},
            at=now,
        )


def _finish(session, conversation, occasion, participant, context) -> Reply:
    now = context.now
    _end(conversation, "completed", now)
    occasion.status = "completed"
    occasion.completed_at = now
    session.add(occasion)
    cancelled = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.occasion_id == occasion.id, OutboundMessage.status == "pending")
        .values(status="cancelled", last_error="occasion completed", status_updated_at=now)
    ).rowcount
    audit.record(
        session,
        f"participant:{participant.code}",
        "occasion.completed",
        entity_type="occasion",
        entity_id=occasion.id,
        details={"channel": "sms", "reminders_cancelled": cancelled},
        at=now,
    )
    return _reply(conversation, context, prompts.text(conversation.language, "thanks"), "completed")


def _closed(conversation, context: InboundContext) -> Reply:
    return _reply(conversation, context, prompts.text(conversation.language, "closed"), "closed")


def _end(conversation: SmsConversation, status: str, now: datetime) -> None:
    conversation.status = status
    conversation.ended_at = now


def _reply(conversation, context: InboundContext, body: str, outcome: str) -> Reply:
    conversation.last_inbound_message_id = context.message.id
    conversation.last_reply = body
    context.session.add(conversation)
    return Reply(body, f"sms_survey_{outcome}")
