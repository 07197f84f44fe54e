"""Withdrawal: by the participant (web link, email link, SMS STOP) or by a coordinator.

Withdrawing stops everything at once, in one transaction: every message not yet sent is
cancelled and every occasion still open or to come is cancelled, so the dispatcher has nothing
left to claim. Occasions already completed, missed or cancelled stay as they are, since they
record what happened before. The participant's active consent is marked withdrawn.

What happens to data collected so far is the protocol's `consent.data_on_withdrawal`:
- `keep`: answers and usage data stay for analysis; the stored *text* of assistant chats is
  erased all the same, because storing it rested only on an optional consent item that the
  participant has now withdrawn;
- `erase`: a full erasure as by a data-subject request (`erase_subject`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from study import audit
from study.models import Consent, Occasion, OutboundMessage, Participant
from study.protocol import Protocol

from .subject import ErasureReport, erase_chat_content, erase_subject

WITHDRAWN_BY = ("participant", "coordinator")
PENDING_MESSAGE = ("pending", "sending")
OPEN_OCCASION = ("scheduled", "sent", "opened", "partial")
MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class WithdrawalResult:
    """What a withdrawal did. `already_withdrawn` means the call found nothing new to do."""

    participant_code: str
    already_withdrawn: bool
    cancelled_messages: int
    cancelled_occasions: int
    data_on_withdrawal: str
    erased_chat_contents: int = 0
    erasure: ErasureReport | None = None


def withdraw(
    session: Session,
    *,
    participant: Participant,
    protocol: Protocol,
    now: datetime,
    actor: str,
    reason: str = "",
    by: str = "participant",
) -> WithdrawalResult:
    """Withdraw `participant` from the study in the caller's transaction; audited.

    Withdrawing someone already withdrawn changes nothing and records nothing, except that it
    still cancels any message that was somehow queued since (and audits that, if there was one).
    The reason is kept on the participant row, never in the audit log, because it is free text
    the participant may have written and the audit log cannot be erased.
    """
    if by not in WITHDRAWN_BY:
        raise ValueError(f"withdrawal by {by!r}: use one of {', '.join(WITHDRAWN_BY)}")
    already = participant.status == "withdrawn"
    policy = protocol.model.consent.data_on_withdrawal
    cancelled_messages = _run(
        session,
        update(OutboundMessage)
        .where(
            col(OutboundMessage.participant_id) == participant.id,
            col(OutboundMessage.status).in_(PENDING_MESSAGE),
        )
        .values(status="cancelled", status_updated_at=now, lease_owner="", lease_expires_at=None),
    )
    cancelled_occasions = _run(
        session,
        update(Occasion)
        .where(
            col(Occasion.participant_id) == participant.id,
            col(Occasion.status).in_(OPEN_OCCASION),
        )
        .values(status="cancelled"),
    )
    if already:
        if cancelled_messages or cancelled_occasions:
            audit.record(
                session,
                actor,
                "participant.withdraw_cleanup",
                entity_type="participant",
                entity_id=participant.id,
                details={
                    "participant": participant.code,
                    "cancelled_messages": cancelled_messages,
                    "cancelled_occasions": cancelled_occasions,
                },
                at=now,
            )
        return WithdrawalResult(
            participant.code, True, cancelled_messages, cancelled_occasions, policy
        )

    before = participant_state(participant)
    participant.status = "withdrawn"
    participant.withdrawn_at = now
    participant.withdrawal_reason = " ".join(reason.split())[:MAX_REASON_LENGTH]
    session.add(participant)
    withdrawn_consents = _run(
        session,
        update(Consent)
        .where(
            col(Consent.participant_id) == participant.id,
            col(Consent.superseded_at).is_(None),
            col(Consent.withdrawn_at).is_(None),
        )
        .values(withdrawn_at=now),
    )
    # Under `erase` the full erasure below removes chat content along with everything else.
    erased_chat = erase_chat_content(session, participant) if policy == "keep" else 0
    session.flush()
    audit.record(
        session,
        actor,
        "participant.withdraw",
        entity_type="participant",
        entity_id=participant.id,
        before=before,
        after=participant_state(participant),
        details={
            "participant": participant.code,
            "by": by,
            "reason_given": bool(participant.withdrawal_reason),
            "cancelled_messages": cancelled_messages,
            "cancelled_occasions": cancelled_occasions,
            "consents_withdrawn": withdrawn_consents,
            "data_on_withdrawal": policy,
            "chat_contents_erased": erased_chat,
        },
        at=now,
    )
    if policy == "erase":
        erasure = erase_subject(
            session, participant=participant, now=now, actor=actor, keep_pseudonymous_data=False
        )
        return WithdrawalResult(
            participant.code,
            False,
            cancelled_messages,
            cancelled_occasions,
            policy,
            erased_chat_contents=erasure.chat_contents,
            erasure=erasure,
        )
    return WithdrawalResult(
        participant.code,
        False,
        cancelled_messages,
        cancelled_occasions,
        policy,
        erased_chat_contents=erased_chat,
    )


def participant_state(participant: Participant) -> dict:
    """What the audit log hashes about a participant (pseudonymous fields only)."""
    return {
        "id": participant.id,
        "code": participant.code,
        "status": participant.status,
        "withdrawn_at": participant.withdrawn_at,
        "withdrawal_reason": participant.withdrawal_reason,
    }


def _run(session: Session, statement) -> int:
    return session.execute(statement).rowcount or 0
