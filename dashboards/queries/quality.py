"""Data quality: answers worth a second look, each a table of participant codes.

- **Straight-lining**: a submitted response to an instrument with at least
  `STRAIGHT_LINE_MIN_ITEMS` (3) numeric answers, all the same value. On a scale with
  reverse-keyed items that is inconsistent; on any scale it is worth checking.
- **Speeding**: a submitted response that took less than `SECONDS_PER_ITEM` (1 s) per answered
  item, from `Response.started_at` to `submitted_at` (nobody reads and answers faster).
- **Out of window**: a response submitted after its occasion's `closes_at`, or before its
  `due_at` (a link used early); with how many minutes outside the window.
- **Duplicate contacts**: two or more participants of the study sharing a phone number or email
  address, found by the keyed lookup hash of the normalised value (`study.pii`), so no contact
  is decrypted and none is shown: the participants' codes and their number only.
- **Free-text answers**: what participants typed, to spot junk or distress. Shown as text,
  never as markup.

Responses are those to any occasion (EMA prompts included) of participants matching the arm
and stratum filters, at the chosen waves, submitted (or, unsubmitted, started) within the dates.
Flags are prompts to look, not exclusions: the preregistration decides what is excluded.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, col, select

from study.models import ContactPoint, ItemResponse, Occasion, Participant, Response

from .common import NO_FILTERS, Filters, as_utc, participants_frame

STRAIGHT_LINE_MIN_ITEMS = 3
SECONDS_PER_ITEM = 1.0
IDENTITY = ["participant", "arm", "occasion", "wave", "instrument"]


def responses_frame(session: Session, study_id: int, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """One row per response of the selected participants, with its occasion's window and
    counts of its answers: `items` (answered), `values` (numeric), `lowest`, `highest`."""
    answers = (
        select(
            ItemResponse.response_id,
            func.count(col(ItemResponse.id)).label("items"),
            func.count(col(ItemResponse.value)).label("values"),
            func.min(ItemResponse.value).label("lowest"),
            func.max(ItemResponse.value).label("highest"),
        )
        .group_by(col(ItemResponse.response_id))
        .subquery()
    )
    query = (
        select(
            Response.id.label("response_id"),
            Participant.code.label("participant"),
            Occasion.schedule_key.label("occasion"),
            Occasion.wave,
            Response.instrument_id.label("instrument"),
            Response.status,
            Response.started_at,
            Response.submitted_at,
            Occasion.due_at,
            Occasion.closes_at,
            func.coalesce(answers.c["items"], 0).label("items"),
            func.coalesce(answers.c["values"], 0).label("values"),
            answers.c.lowest,
            answers.c.highest,
        )
        .join(Occasion, col(Occasion.id) == Response.occasion_id)
        .join(Participant, col(Participant.id) == Response.participant_id)
        .join(answers, answers.c.response_id == Response.id, isouter=True)
        .where(Participant.study_id == study_id)
        .order_by(col(Participant.code), col(Occasion.due_at), col(Response.instrument_id))
    )
    if filters.waves:
        query = query.where(col(Occasion.wave).in_(filters.waves))
    frame = pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))
    for name in ("started_at", "submitted_at", "due_at", "closes_at"):
        frame[name] = as_utc(frame[name])
    return _selected(
        session, study_id, filters, frame, frame["submitted_at"].fillna(frame["started_at"])
    )


def _selected(session, study_id, filters, frame, instants) -> pd.DataFrame:
    """`frame` narrowed to the filters' participants (with their arm added) and dates."""
    people = filters.select_participants(participants_frame(session, study_id))
    arms = people.set_index("participant")["arm"]
    keep = frame["participant"].isin(arms.index) & filters.in_dates(instants)
    frame = frame[keep]
    arm = frame["participant"].map(arms)
    return frame.assign(arm=arm).reset_index(drop=True)


def _submitted(responses: pd.DataFrame) -> pd.DataFrame:
    return responses[responses["submitted_at"].notna()]


def straight_lining(
    responses: pd.DataFrame, *, min_items: int = STRAIGHT_LINE_MIN_ITEMS
) -> pd.DataFrame:
    """Submitted responses with at least `min_items` numeric answers, all equal."""
    done = _submitted(responses)
    same = done[(done["values"] >= min_items) & (done["lowest"] == done["highest"])]
    return same.assign(answer=same["lowest"])[[*IDENTITY, "values", "answer"]].reset_index(
        drop=True
    )


def speeding(
    responses: pd.DataFrame, *, seconds_per_item: float = SECONDS_PER_ITEM
) -> pd.DataFrame:
    """Submitted responses answered in less than `seconds_per_item` per answered item."""
    done = _submitted(responses)
    done = done[done["items"] > 0]
    seconds = (done["submitted_at"] - done["started_at"]).dt.total_seconds()
    per_item = seconds / done["items"]
    fast = done.assign(seconds=seconds, seconds_per_item=per_item)[per_item < seconds_per_item]
    return fast[[*IDENTITY, "items", "seconds", "seconds_per_item"]].reset_index(drop=True)


def out_of_window(responses: pd.DataFrame) -> pd.DataFrame:
    """Submitted responses after their occasion closed or before it was due, with the minutes
    outside the window."""
    done = _submitted(responses)
    late = done["submitted_at"] > done["closes_at"]
    early = done["submitted_at"] < done["due_at"]
    outside = done.assign(
        problem=late.map({True: "after close", False: "before due"}),
        minutes_outside=(
            (done["submitted_at"] - done["closes_at"]).where(
                late, done["due_at"] - done["submitted_at"]
            )
        ).dt.total_seconds()
        / 60,
    )[late | early]
    columns = [*IDENTITY, "due_at", "closes_at", "submitted_at", "problem", "minutes_outside"]
    return outside[columns].reset_index(drop=True)


def duplicate_contacts(
    session: Session, study_id: int, filters: Filters = NO_FILTERS
) -> pd.DataFrame:
    """Groups of two or more participants sharing a contact (by lookup hash), as `kind`,
    `participants` (their codes) and `count`; a group is listed when any member matches the
    arm and stratum filters. No contact value or hash leaves this function."""
    rows = session.execute(
        select(ContactPoint.kind, ContactPoint.lookup_hash, Participant.code)
        .join(Participant, col(Participant.id) == ContactPoint.participant_id)
        .where(Participant.study_id == study_id)
    ).all()
    points = pd.DataFrame(rows, columns=["kind", "lookup_hash", "participant"])
    chosen = set(filters.select_participants(participants_frame(session, study_id))["participant"])
    groups = []
    for (kind, _hash), group in points.groupby(["kind", "lookup_hash"], sort=False):
        codes = sorted(set(group["participant"]))
        if len(codes) > 1 and chosen.intersection(codes):
            groups.append({"kind": kind, "participants": ", ".join(codes), "count": len(codes)})
    frame = pd.DataFrame(groups, columns=["kind", "participants", "count"])
    return frame.sort_values(["kind", "participants"]).reset_index(drop=True)


def free_text_answers(
    session: Session, study_id: int, filters: Filters = NO_FILTERS
) -> pd.DataFrame:
    """Every non-empty free-text answer: participant, arm, occasion, wave, instrument, item,
    answered_at and text, newest first."""
    query = (
        select(
            Participant.code.label("participant"),
            Occasion.schedule_key.label("occasion"),
            Occasion.wave,
            Response.instrument_id.label("instrument"),
            ItemResponse.item_id.label("item"),
            ItemResponse.answered_at,
            ItemResponse.text,
        )
        .join(Response, col(Response.id) == ItemResponse.response_id)
        .join(Occasion, col(Occasion.id) == Response.occasion_id)
        .join(Participant, col(Participant.id) == Response.participant_id)
        .where(Participant.study_id == study_id, col(ItemResponse.text).isnot(None))
        .where(ItemResponse.text != "")
        .order_by(col(ItemResponse.answered_at).desc(), col(ItemResponse.id).desc())
    )
    if filters.waves:
        query = query.where(col(Occasion.wave).in_(filters.waves))
    frame = pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))
    frame["answered_at"] = as_utc(frame["answered_at"])
    frame = _selected(session, study_id, filters, frame, frame["answered_at"])
    return frame[[*IDENTITY, "item", "answered_at", "text"]]
