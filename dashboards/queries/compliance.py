"""Compliance for the dashboards: the per-occasion records of `study.compliance` as a frame,
and the tables the page draws from it.

Statuses, lateness and "due" (counts toward a response rate) are `study.compliance`'s, so the
dashboard, `flourish compliance` and the report agree. EMA prompts are left out of the wave
views (a wave is one measurement occasion; EMA has many a day); their records stay in
`compliance_frame(..., include_ema=True)`.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlmodel import Session

from study.compliance import DELIVERY_FAILURES, compliance_records

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
    """
    people = filters.select_participants(participants_frame(session, study_id))
    chosen = set(people["participant"])
    rows, messages = [], []
    for record in compliance_records(session, study_id, now=now):
        if record.participant not in chosen or (record.kind == "ema" and not include_ema):
            continue
        if filters.waves and record.wave not in filters.waves:
            continue
        rows.append(
            (
                record.participant,
                record.arm,
                record.schedule_key,
                record.wave,
                record.kind,
                record.due_at,
                record.status,
                record.reached,
                record.late,
                record.is_due(now),
            )
        )
        for message in record.messages:
            messages.append(
                (
                    record.participant,
                    record.arm,
                    record.schedule_key,
                    record.wave,
                    message.channel,
                    message.purpose,
                    message.status,
                )
            )
    occasions = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    occasions["due_at"] = as_utc(occasions["due_at"])
    keep = filters.in_dates(occasions["due_at"])
    message_columns = ["participant", "arm", "occasion", "wave", "channel", "purpose", "status"]
    outbox = pd.DataFrame(messages, columns=message_columns)
    kept_occasions = set(
        zip(occasions.loc[keep, "participant"], occasions.loc[keep, "occasion"], strict=True)
    )
    outbox = outbox[
        [
            pair in kept_occasions
            for pair in zip(outbox["participant"], outbox["occasion"], strict=True)
        ]
    ]
    return occasions[keep].reset_index(drop=True), outbox.reset_index(drop=True)


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
