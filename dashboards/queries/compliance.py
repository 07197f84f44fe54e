"""Compliance for the dashboards: the per-occasion records of `study.compliance` as a frame,
and the tables the page draws from it.

Statuses, lateness and "due" (counts toward a response rate) follow `study.compliance`'s rules,
so the dashboard, `flourish compliance` and the report agree (a test compares them record by
record). EMA prompts are left out of the wave
views (a wave is one measurement occasion; EMA has many a day); their records stay in
`compliance_frame(..., include_ema=True)`.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlmodel import Session, col, select

from study.compliance import DELIVERY_FAILURES, OPEN_STATUSES
from study.models import Allocation, Arm, Occasion, OutboundMessage, Participant, Response

from .common import NO_FILTERS, Filters, as_utc, participants_frame

RECORD_COLUMNS = [
    "participant",
    "arm",
    "occasion",
    "wave",
    "kind",
    "due_at",
    "status",
    "reached",
    "late",
    "due",
]
# Heatmap cell values: the order a reader scans a row in, worst first.
STATUS_CODES = {
    "missed": 0,
    "cancelled": 1,
    "scheduled": 2,
    "sent": 3,
    "delivered": 4,
    "opened": 5,
    "partial": 6,
    "completed": 7,
}


def compliance_frame(
    session: Session,
    study_id: int,
    *,
    now: datetime,
    filters: Filters = NO_FILTERS,
    include_ema: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(occasions, messages) of the participants and occasions the filters select.

    occasions: one row per occasion, `RECORD_COLUMNS` (`due`: counts toward the response rate).
    messages: one row per outbox message of those occasions: `participant`, `arm`, `occasion`,
    `wave`, `channel`, `purpose`, `status`.

    The same statuses as `study.compliance.compliance_records`, computed column-wise: that
    function builds an object per occasion, which takes seconds at 3,000 participants x 13
    waves, too slow for a page. tests/dashboards/test_compliance_agrees.py checks, record by
    record, that both say the same.
    """
    people = filters.select_participants(participants_frame(session, study_id))
    where = [Participant.study_id == study_id]
    if not include_ema:
        where.append(Occasion.kind != "ema")
    if filters.waves:
        where.append(col(Occasion.wave).in_(sorted(filters.waves)))
    occasions = _occasion_rows(session, where)
    occasions = occasions[occasions["participant_id"].isin(set(people["participant_id"]))]
    occasions = occasions[filters.in_dates(occasions["due_at"])]
    outbox = _message_rows(session, where)
    outbox = outbox[outbox["occasion_id"].isin(set(occasions["occasion_id"]))]
    answered = set(
        session.exec(
            select(Response.occasion_id)
            .join(Participant, col(Participant.id) == Response.participant_id)
            .where(Participant.study_id == study_id)
            .distinct()
        )
    )
    records = _refine(occasions, outbox, answered, now)
    messages = outbox.merge(
        records[["occasion_id", "participant", "arm", "occasion", "wave"]], on="occasion_id"
    )
    message_columns = ["participant", "arm", "occasion", "wave", "channel", "purpose", "status"]
    return (
        records[RECORD_COLUMNS].reset_index(drop=True),
        messages[message_columns].reset_index(drop=True),
    )


# Core rows (session.connection()) rather than ORM rows: a third of the time at 39,000 occasions.
def _occasion_rows(session: Session, where: list) -> pd.DataFrame:
    rows = (
        session.connection()
        .execute(
            select(
                Occasion.id,
                Participant.id,
                Participant.code,
                Arm.key,
                Occasion.schedule_key,
                Occasion.wave,
                Occasion.kind,
                Occasion.due_at,
                Occasion.closes_at,
                Occasion.status,
                Occasion.opened_at,
                Occasion.completed_at,
            )
            .join(Participant, col(Participant.id) == Occasion.participant_id)
            .join(Allocation, col(Allocation.participant_id) == Participant.id, isouter=True)
            .join(Arm, col(Arm.id) == Allocation.arm_id, isouter=True)
            .where(*where)
            .order_by(col(Occasion.due_at), col(Participant.code), col(Occasion.schedule_key))
        )
        .all()
    )
    frame = pd.DataFrame(
        [tuple(row) for row in rows],
        columns=[
            "occasion_id",
            "participant_id",
            "participant",
            "arm",
            "occasion",
            "wave",
            "kind",
            "due_at",
            "closes_at",
            "stored",
            "opened_at",
            "completed_at",
        ],
    )
    for column in ("due_at", "closes_at", "opened_at", "completed_at"):
        frame[column] = as_utc(frame[column])
    return frame


def _message_rows(session: Session, where: list) -> pd.DataFrame:
    rows = (
        session.connection()
        .execute(
            select(
                OutboundMessage.occasion_id,
                OutboundMessage.channel,
                OutboundMessage.purpose,
                OutboundMessage.status,
                OutboundMessage.sent_at,
            )
            .join(Occasion, col(Occasion.id) == OutboundMessage.occasion_id)
            .join(Participant, col(Participant.id) == Occasion.participant_id)
            .where(*where)
            .order_by(col(OutboundMessage.id))
        )
        .all()
    )
    frame = pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["occasion_id", "channel", "purpose", "status", "sent_at"],
    )
    frame["sent_at"] = as_utc(frame["sent_at"])
    return frame


def _refine(
    occasions: pd.DataFrame, outbox: pd.DataFrame, answered: set[int], now: datetime
) -> pd.DataFrame:
    """`study.compliance._record`'s rules, a column at a time."""
    by_occasion = outbox.groupby("occasion_id")
    first_sent = by_occasion["sent_at"].min()
    delivered = set(outbox.loc[outbox["status"] == "delivered", "occasion_id"])
    reminders = outbox[(outbox["purpose"] == "reminder") & outbox["sent_at"].notna()]
    first_reminder = reminders.groupby("occasion_id")["sent_at"].min()

    ids = occasions["occasion_id"]
    sent_at = _per_occasion(first_sent, ids)
    was_delivered = ids.isin(delivered)
    stored = occasions["stored"]
    reached = pd.Series("scheduled", index=occasions.index)
    for stage, happened in (
        ("sent", sent_at.notna()),
        ("delivered", was_delivered),
        ("opened", occasions["opened_at"].notna()),
        ("partial", ids.isin(answered) | (stored == "partial")),
        ("completed", stored == "completed"),
    ):
        reached = reached.where(~happened, stage)

    status = stored.where(~((stored == "scheduled") & sent_at.notna()), "sent")
    status = status.where(~((status == "sent") & was_delivered), "delivered")
    still_open = status.isin([*OPEN_STATUSES, "delivered"])
    status = status.where(~(still_open & (occasions["closes_at"] <= now)), "missed")

    completed_at = occasions["completed_at"].where(stored == "completed")
    reminder_at = _per_occasion(first_reminder, ids)
    late = completed_at.notna() & (
        (completed_at > occasions["closes_at"])
        | (reminder_at.notna() & (reminder_at < completed_at))
    )
    due = (status != "cancelled") & ((status == "completed") | (occasions["closes_at"] <= now))
    return occasions.assign(status=status, reached=reached, late=late, due=due)


def _per_occasion(values: pd.Series, ids: pd.Series) -> pd.Series:
    """`values` (indexed by occasion id) aligned to `ids`, keeping the instants' dtype."""
    aligned = pd.Series(values.reindex(ids.to_numpy()).to_numpy(), index=ids.index)
    return pd.to_datetime(aligned, utc=True)


def status_matrix(occasions: pd.DataFrame) -> pd.DataFrame:
    """Participants (rows, by code) x occasions (columns, in order of wave then first due time),
    each cell the occasion's status; empty where a participant has no such occasion."""
    if occasions.empty:
        return pd.DataFrame()
    order = (
        occasions.groupby("occasion")
        .agg(wave=("wave", "min"), due=("due_at", "min"))
        .sort_values(["wave", "due"])
        .index
    )
    matrix = occasions.pivot_table(
        index="participant", columns="occasion", values="status", aggfunc="first"
    )
    return matrix.reindex(columns=list(order)).sort_index()


def response_rates(occasions: pd.DataFrame) -> pd.DataFrame:
    """Per wave and arm: `occasions`, `due`, `completed` (of those due) and `response_rate`
    (completed / due; empty while nothing is due)."""
    columns = ["wave", "arm", "occasions", "due", "completed", "response_rate"]
    if occasions.empty:
        return pd.DataFrame(columns=columns)
    frame = occasions.assign(
        arm=occasions["arm"].fillna("unallocated"),
        done=(occasions["status"] == "completed") & occasions["due"],
    )
    table = (
        frame.groupby(["wave", "arm"])
        .agg(occasions=("status", "size"), due=("due", "sum"), completed=("done", "sum"))
        .reset_index()
    )
    table["response_rate"] = (table["completed"] / table["due"].where(table["due"] > 0)).round(4)
    return table[columns]


def late_and_missed(occasions: pd.DataFrame) -> pd.DataFrame:
    """Per wave and arm: `completed`, `late` (completed after a reminder or after closing),
    `missed`, `missed_partial` (missed after some answers) and `cancelled`."""
    columns = ["wave", "arm", "completed", "late", "missed", "missed_partial", "cancelled"]
    if occasions.empty:
        return pd.DataFrame(columns=columns)
    status = occasions["status"]
    frame = occasions.assign(
        arm=occasions["arm"].fillna("unallocated"),
        completed=status == "completed",
        missed=status == "missed",
        missed_partial=(status == "missed") & (occasions["reached"] == "partial"),
        cancelled=status == "cancelled",
    )
    table = frame.groupby(["wave", "arm"])[columns[2:]].sum().reset_index()
    return table[columns]


def delivery_failures(messages: pd.DataFrame) -> pd.DataFrame:
    """Per channel: `messages`, then one column per provider failure (`undelivered`, `failed`),
    `failures` and `failure_rate` (failures / messages)."""
    columns = ["channel", "messages", *DELIVERY_FAILURES, "failures", "failure_rate"]
    if messages.empty:
        return pd.DataFrame(columns=columns)
    table = messages.groupby("channel").agg(messages=("status", "size")).reset_index()
    for failure in DELIVERY_FAILURES:
        counts = messages[messages["status"] == failure].groupby("channel").size()
        table[failure] = table["channel"].map(counts).fillna(0).astype(int)
    table["failures"] = table[list(DELIVERY_FAILURES)].sum(axis=1)
    table["failure_rate"] = (table["failures"] / table["messages"]).round(4)
    return table[columns]
