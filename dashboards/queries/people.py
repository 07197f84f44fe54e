"""One participant's timeline, and the outbox as a queue: the dashboards' operational views.

Neither ever returns message texts (they hold survey links) nor contact details; contact
details come only from `consent.roster.reveal_contacts`, which audits every look.
"""

from __future__ import annotations

import pandas as pd
from sqlmodel import Session, col, select

from study.models import Interaction, Occasion, OutboundMessage, Participant

from .common import NO_FILTERS, Filters, as_utc, participants_frame

TIMELINE_COLUMNS = ["at", "type", "item", "status", "detail"]
QUEUE_COLUMNS = [
    "message_id",
    "participant",
    "channel",
    "purpose",
    "status",
    "send_after",
    "attempts",
    "last_error",
    "occasion",
    "wave",
]
QUEUE_STATUSES = ("pending", "sending", "failed", "undelivered")


def find_participant(session: Session, study_id: int, code: str) -> Participant | None:
    """The study's participant with this code (case and surrounding spaces ignored)."""
    code = (code or "").strip().upper()
    if not code:
        return None
    return session.exec(
        select(Participant).where(Participant.study_id == study_id, Participant.code == code)
    ).first()


def timeline(session: Session, participant_id: int) -> pd.DataFrame:
    """Occasions, outbox messages and assistant turns of one participant, oldest first.

    Occasions sit at their due time, messages at their send time (or when they are due to go),
    assistant turns at the moment they happened. `detail` says a little more: the window's
    close, a message's attempts and error, a turn's session and tokens.
    """
    events: list[tuple] = []
    for occasion in session.exec(select(Occasion).where(Occasion.participant_id == participant_id)):
        events.append(
            (
                occasion.due_at,
                "occasion",
                f"{occasion.schedule_key} (wave {occasion.wave})",
                occasion.status,
                f"closes {occasion.closes_at:%Y-%m-%d %H:%M} UTC",
            )
        )
    for message in session.exec(
        select(OutboundMessage).where(OutboundMessage.participant_id == participant_id)
    ):
        detail = f"attempts {message.attempts}"
        if message.last_error:
            detail += f"; {message.last_error}"
        events.append(
            (
                message.sent_at or message.send_after,
                "message",
                f"{message.purpose} by {message.channel}",
                message.status,
                detail,
            )
        )
    turns = session.exec(
        select(
            Interaction.occurred_at,
            Interaction.role,
            Interaction.session_id,
            Interaction.prompt_tokens,
            Interaction.completion_tokens,
        ).where(Interaction.participant_id == participant_id)
    )
    for occurred_at, role, session_id, prompt_tokens, completion_tokens in turns:
        tokens = (prompt_tokens or 0) + (completion_tokens or 0)
        events.append(
            (
                occurred_at,
                "interaction",
                f"{role} turn",
                "",
                f"session {session_id}; {tokens} tokens",
            )
        )
    frame = pd.DataFrame(events, columns=TIMELINE_COLUMNS)
    frame["at"] = as_utc(frame["at"])
    return frame.sort_values(["at", "type"], kind="stable").reset_index(drop=True)


def message_queue(
    session: Session,
    study_id: int,
    filters: Filters = NO_FILTERS,
    *,
    statuses: tuple[str, ...] = QUEUE_STATUSES,
) -> pd.DataFrame:
    """The study's outbox rows in `statuses`, oldest due first: `QUEUE_COLUMNS`.

    Arm and stratum filters select participants, waves the occasions, dates `send_after`.
    """
    rows = session.exec(
        select(
            OutboundMessage.id,
            Participant.code,
            OutboundMessage.channel,
            OutboundMessage.purpose,
            OutboundMessage.status,
            OutboundMessage.send_after,
            OutboundMessage.attempts,
            OutboundMessage.last_error,
            Occasion.schedule_key,
            Occasion.wave,
        )
        .join(Participant, col(Participant.id) == OutboundMessage.participant_id)
        .join(Occasion, col(Occasion.id) == OutboundMessage.occasion_id, isouter=True)
        .where(Participant.study_id == study_id, col(OutboundMessage.status).in_(statuses))
        .order_by(col(OutboundMessage.send_after), col(OutboundMessage.id))
    ).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=QUEUE_COLUMNS)
    frame["send_after"] = as_utc(frame["send_after"])
    if filters.arms or filters.strata:
        chosen = filters.select_participants(participants_frame(session, study_id))
        frame = frame[frame["participant"].isin(set(chosen["participant"]))]
    if filters.waves:
        frame = frame[frame["wave"].isin(filters.waves)]
    frame = frame[filters.in_dates(frame["send_after"])]
    frame["wave"] = frame["wave"].astype("Int64")
    return frame.reset_index(drop=True)
