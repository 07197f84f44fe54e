"""Inbound SMS: store each message once, act on carrier keywords, leave a hook for conversations.

`receive_sms` is what the Twilio webhook calls after verifying the signature. It

1. de-duplicates by the provider's message id (Twilio retries a webhook it thinks failed; a
   repeat gets the same reply and changes nothing),
2. stores the message with the sender as a keyed hash, never the number itself,
3. finds the participant by `ContactPoint.lookup_hash`,
4. handles the keywords carriers require (case-insensitive, surrounding spaces and trailing
   punctuation ignored): STOP and its synonyms opt the number out, START opts it back in, HELP
   replies with the study contact, and WITHDRAW withdraws the participant from the study,
5. offers anything else to the registered inbound handlers (`register_inbound_handler`; the SMS
   survey conversation plugs in there), and otherwise answers that we did not understand.

STOP means "no more texts": the participant stays in the study and keeps answering by web or
email. WITHDRAW means "leave the study": consent is withdrawn and every pending message and
open occasion is cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

import consent
from study.models import ContactPoint, InboundMessage, Participant
from study.pii import PiiError, PiiVault
from study.protocol import Protocol, ProtocolError
from study.protocol.registry import current_version, parsed_version

from . import optout
from .texts import DEFAULT_LANGUAGE, contact_line, sms_sender, text

log = logging.getLogger("flourish.channels.inbound")

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
WITHDRAW_KEYWORDS = frozenset({"WITHDRAW"})
ACTIVE = ("enrolled", "consented", "completed")


@dataclass(frozen=True)
class Reply:
    """What to answer. `text` None answers with nothing (empty TwiML)."""

    text: str | None
    action: str


@dataclass
class InboundContext:
    """What a handler gets: the stored message, who sent it (if known) and the session.

    On a provider retry `replay` is true: the handler must answer as it did the first time and
    change nothing.
    """

    session: Session
    message: InboundMessage
    participant: Participant | None
    now: datetime
    replay: bool = False
    _protocol: Protocol | None = field(default=None, repr=False)

    @property
    def keyword(self) -> str:
        return normalise_keyword(self.message.body)

    @property
    def language(self) -> str:
        return self.participant.language if self.participant else DEFAULT_LANGUAGE

    @property
    def protocol(self) -> Protocol | None:
        """The protocol in force for the participant's study (None when unknown)."""
        if self._protocol is None and self.participant is not None:
            self._protocol = protocol_in_force(self.session, self.participant.study_id)
        return self._protocol


InboundHandler = Callable[[InboundContext], Reply | None]
_handlers: list[InboundHandler] = []


def register_inbound_handler(handler: InboundHandler) -> InboundHandler:
    """Offer non-keyword messages to `handler` (in registration order); it returns a `Reply`
    when the message is its business, None to let the next handler look. Usable as a
    decorator."""
    if handler not in _handlers:
        _handlers.append(handler)
    return handler


def unregister_inbound_handler(handler: InboundHandler) -> None:
    if handler in _handlers:
        _handlers.remove(handler)


@dataclass(frozen=True)
class InboundResult:
    reply: str | None
    action: str
    duplicate: bool
    participant_code: str | None
    # True when a withdrawal erased data: the caller purges residues after committing
    # (`consent.purge_erased_residues`), as every withdrawal path does.
    needs_purge: bool = False


def receive_sms(
    session: Session,
    vault: PiiVault,
    *,
    provider_message_id: str,
    sender: str,
    body: str,
    now: datetime,
    handlers: list[InboundHandler] | None = None,
) -> InboundResult:
    """Store and act on one inbound SMS in the caller's transaction (the caller commits).

    Call it on a session with no other pending changes: when a concurrent delivery of the same
    message wins the race for the unique message id, the session is rolled back and the
    message is answered as a repeat.
    """
    existing = _stored(session, provider_message_id)
    if existing is not None:
        return _replay(session, existing, now, handlers)
    sender_hash = _sender_hash(vault, sender)
    participant = _participant(session, sender_hash)
    message = InboundMessage(
        channel="sms",
        provider_message_id=provider_message_id,
        sender_hash=sender_hash,
        participant_id=participant.id if participant else None,
        body=body,
        received_at=now,
        handled_at=now,
    )
    session.add(message)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        existing = _stored(session, provider_message_id)
        if existing is None:
            raise
        return _replay(session, existing, now, handlers)
    context = InboundContext(session, message, participant, now)
    reply, purge = _dispatch(context, handlers)
    return InboundResult(reply.text, reply.action, False, _code(participant), purge)


def normalise_keyword(body: str) -> str:
    """The message as a keyword candidate: upper case, inner spaces collapsed, outer spaces and
    trailing punctuation dropped (`" Stop. "` is STOP)."""
    return " ".join(body.split()).upper().rstrip(".!?").strip()


def protocol_in_force(session: Session, study_id: int) -> Protocol | None:
    version = current_version(session, study_id)
    if version is None:
        return None
    try:
        return parsed_version(version)
    except ProtocolError:
        log.exception("protocol version %s of study %s cannot be loaded", version.id, study_id)
        return None


# --- what each message gets -----------------------------------------------------------------


def _dispatch(context: InboundContext, handlers) -> tuple[Reply, bool]:
    keyword = context.keyword
    if keyword in OPT_OUT_KEYWORDS:
        return _opt_out(context), False
    if keyword in OPT_IN_KEYWORDS:
        return _opt_in(context), False
    if keyword in HELP_KEYWORDS:
        return _help(context), False
    if keyword in WITHDRAW_KEYWORDS:
        return _withdraw(context)
    for handler in _handlers if handlers is None else handlers:
        reply = handler(context)
        if reply is not None:
            return reply, False
    return Reply(text(context.language, "sms.not_understood"), "not_understood"), False


def _opt_out(context: InboundContext) -> Reply:
    # Twilio answers STOP itself with the carrier's wording; a reply from us would be blocked.
    if not context.replay:
        optout.opt_out(
            context.session,
            lookup_hash=context.message.sender_hash,
            now=context.now,
            actor=_actor(context),
            source=f"sms keyword {context.keyword}",
        )
    return Reply(None, "opt_out")


def _opt_in(context: InboundContext) -> Reply:
    if not context.replay:
        optout.opt_in(
            context.session,
            lookup_hash=context.message.sender_hash,
            now=context.now,
            actor=_actor(context),
            source=f"sms keyword {context.keyword}",
        )
    return Reply(None, "opt_in")


def _help(context: InboundContext) -> Reply:
    protocol = context.protocol
    if protocol is None:
        return Reply(text(context.language, "sms.help.unknown"), "help")
    return Reply(
        text(
            context.language,
            "sms.help",
            sender=sms_sender(protocol),
            title=protocol.model.study.title_for_participants(context.language),
            contact=contact_line(protocol),
        ),
        "help",
    )


def _withdraw(context: InboundContext) -> tuple[Reply, bool]:
    participant, protocol = context.participant, context.protocol
    if participant is None or protocol is None:
        return Reply(text(context.language, "sms.withdraw.unknown"), "withdraw_unknown"), False
    purge = False
    if not context.replay:
        result = consent.withdraw(
            context.session,
            participant=participant,
            protocol=protocol,
            now=context.now,
            actor=_actor(context),
            reason="",
            by="participant",
        )
        purge = result.erasure is not None
    reply = text(context.language, "sms.withdrawn", sender=sms_sender(protocol))
    return Reply(reply, "withdraw"), purge


# --- lookups ----------------------------------------------------------------------------------


def _replay(session, message: InboundMessage, now, handlers) -> InboundResult:
    participant = (
        session.get(Participant, message.participant_id) if message.participant_id else None
    )
    context = InboundContext(session, message, participant, now, replay=True)
    reply, _ = _dispatch(context, handlers)
    return InboundResult(reply.text, reply.action, True, _code(participant))


def _stored(session: Session, provider_message_id: str) -> InboundMessage | None:
    return session.exec(
        select(InboundMessage).where(InboundMessage.provider_message_id == provider_message_id)
    ).first()


def _sender_hash(vault: PiiVault, sender: str) -> str:
    try:
        return vault.lookup_hash("sms", sender)
    except PiiError:
        # Short codes and alphanumeric senders are not participants' phones.
        return ""


def _participant(session: Session, sender_hash: str) -> Participant | None:
    """The participant this number belongs to; when several records share it, the most
    recently created one still taking part (else the most recent)."""
    if not sender_hash:
        return None
    candidates = session.exec(
        select(Participant)
        .join(ContactPoint, col(ContactPoint.participant_id) == col(Participant.id))
        .where(ContactPoint.kind == "sms", ContactPoint.lookup_hash == sender_hash)
        .order_by(col(Participant.created_at).desc(), col(Participant.id).desc())
    ).all()
    active = [p for p in candidates if p.status in ACTIVE]
    return (active or candidates or [None])[0]


def _actor(context: InboundContext) -> str:
    if context.participant is not None:
        return f"participant:{context.participant.code}"
    return "sms:unknown-sender"


def _code(participant: Participant | None) -> str | None:
    return participant.code if participant else None
