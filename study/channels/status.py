"""Delivery reports: the provider tells us what became of a message, and the outbox follows,
forward only.

Twilio posts a status callback for each change (queued, sent, delivered, undelivered, failed),
but callbacks can arrive late, twice or out of order: a "sent" that arrives after "delivered"
must not move the message back. Each update is therefore one conditional UPDATE that only
succeeds from an earlier status, which is also safe when two callbacks race.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from sqlalchemy import update
from sqlmodel import Session, col, select

from study.models import OutboundMessage

# Our outbox statuses in the order a message moves through them. Delivered, undelivered and
# failed are final; cancelled and expired messages were never sent and have no provider id.
RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
# The provider's statuses that move our record; queued/accepted/sending say nothing new once
# the dispatcher has recorded the message as sent, and read counts as delivered.
PROVIDER_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
PROVIDER_ERRORS = {
    "30001": "queue overflow at the provider",
    "30002": "provider account suspended",
    "30003": "handset unreachable (off or out of coverage)",
    "30004": "blocked by the recipient or their carrier",
    "30005": "unknown or inactive number",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown delivery error",
    "21610": "recipient opted out (STOP)",
}


class StatusOutcome(Enum):
    UPDATED = "updated"
    # Matched by the dispatcher's attempt key before it recorded the send: the provider id is
    # kept, the status is left for the dispatcher to record.
    ID_RECORDED = "id_recorded"
    STALE = "stale"  # the message is already at this status or further along
    UNKNOWN_MESSAGE = "unknown_message"
    NOT_A_STEP = "not_a_step"  # a provider status that does not move our record


def apply_status(
    session: Session,
    *,
    provider_message_id: str,
    provider_status: str,
    now: datetime,
    error_code: str | None = None,
    attempt_key: str | None = None,
) -> StatusOutcome:
    """Move the outbox message with this provider id to the reported status, if that is a step
    forward; records `status_updated_at` and, for a failure, the provider's reason.

    `attempt_key` (from the callback URL the dispatcher gave) finds a message whose send the
    dispatcher has not recorded yet, e.g. after a crash: its provider id is stored, so that
    later callbacks find it, but its status is left to the dispatcher's record of the send.
    """
    target = PROVIDER_STATUS.get((provider_status or "").strip().lower())
    if not provider_message_id:
        return StatusOutcome.UNKNOWN_MESSAGE
    if attempt_key and _record_id(session, attempt_key, provider_message_id):
        return StatusOutcome.ID_RECORDED
    if target is None:
        return _known(session, provider_message_id, StatusOutcome.NOT_A_STEP)
    earlier = [status for status, rank in RANK.items() if rank < RANK[target]]
    values: dict = {"status": target, "status_updated_at": now}
    if target in ("undelivered", "failed"):
        values["last_error"] = describe_error(error_code)[:500]
    changed = session.execute(
        update(OutboundMessage)
        .where(
            col(OutboundMessage.provider_message_id) == provider_message_id,
            col(OutboundMessage.status).in_(earlier),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        return StatusOutcome.UPDATED
    return _known(session, provider_message_id, StatusOutcome.STALE)


def describe_error(error_code: str | None) -> str:
    """A provider error code with what it means, for coordinators (e.g. `twilio 30005: ...`)."""
    if not error_code:
        return "provider reported a failure without an error code"
    meaning = PROVIDER_ERRORS.get(str(error_code))
    return f"twilio {error_code}: {meaning}" if meaning else f"twilio {error_code}"


def _record_id(session: Session, attempt_key: str, provider_message_id: str) -> bool:
    return bool(
        session.execute(
            update(OutboundMessage)
            .where(
                col(OutboundMessage.attempt_key) == attempt_key,
                col(OutboundMessage.provider_message_id) == "",
            )
            .values(provider_message_id=provider_message_id[:64])
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _known(session: Session, provider_message_id: str, outcome: StatusOutcome) -> StatusOutcome:
    exists = session.exec(
        select(OutboundMessage.id).where(OutboundMessage.provider_message_id == provider_message_id)
    ).first()
    return outcome if exists is not None else StatusOutcome.UNKNOWN_MESSAGE
