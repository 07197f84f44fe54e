"""What every dashboard query shares: the studies, their arms (named or blinded), the
participants behind each filter, and the filters themselves.

Plain functions over a SQLModel session returning pandas frames or dataclasses; nothing here
knows of Dash or Flask, so the CLI, the report and the tests can call the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from sqlmodel import Session, col, select

from study.models import Allocation, Arm, Participant, Study

PARTICIPANT_COLUMNS = ["participant_id", "participant", "status", "arm", "enrolled_at", "strata"]


@dataclass(frozen=True)
class StudyChoice:
    id: int
    slug: str
    title: str


def studies(session: Session) -> list[StudyChoice]:
    """Every study, oldest first (the first is the dashboards' default)."""
    rows = session.exec(select(Study).order_by(col(Study.created_at), col(Study.id))).all()
    return [StudyChoice(study.id, study.slug, study.title) for study in rows]


def arm_keys(session: Session, study_id: int) -> list[str]:
    """The study's arm keys in the order they were defined."""
    return list(session.exec(select(Arm.key).where(Arm.study_id == study_id).order_by(col(Arm.id))))


def arm_labels(keys: Iterable[str], *, study_id: int, secret: str, blind: bool) -> dict[str, str]:
    """How each arm is shown: its key, or for a blinded viewer "Arm A", "Arm B", ...

    Blinded letters follow a keyed hash of study and key, so neither the protocol's order nor
    alphabetical order of the keys tells a blinded viewer which letter is which arm, while the
    same arm keeps its letter on every page and every day.
    """
    keys = list(keys)
    if not blind:
        return {key: key for key in keys}

    def rank(key: str) -> str:
        message = f"{study_id}:{key}".encode()
        return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

    letters = string.ascii_uppercase
    ordered = sorted(keys, key=rank)
    return {
        key: f"Arm {letters[i % 26]}{'' if i < 26 else i // 26}" for i, key in enumerate(ordered)
    }


def participants_frame(session: Session, study_id: int) -> pd.DataFrame:
    """One row per participant: id, code, status, arm key (None before allocation), enrolment
    instant and strata (a dict of factor to level)."""
    rows = session.exec(
        select(
            Participant.id,
            Participant.code,
            Participant.status,
            Arm.key,
            Participant.enrolled_at,
            Participant.strata,
        )
        .join(Allocation, col(Allocation.participant_id) == Participant.id, isouter=True)
        .join(Arm, col(Arm.id) == Allocation.arm_id, isouter=True)
        .where(Participant.study_id == study_id)
        .order_by(col(Participant.code))
    ).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=PARTICIPANT_COLUMNS)


def strata_options(participants: pd.DataFrame) -> list[str]:
    """Every `factor=level` pair present among the participants, sorted."""
    pairs = {
        f"{factor}={level}"
        for strata in participants["strata"]
        if isinstance(strata, dict)
        for factor, level in strata.items()
    }
    return sorted(pairs)


@dataclass(frozen=True)
class Filters:
    """What a researcher narrowed a page to. Empty collections and None mean "all".

    `strata` holds `factor=level` pairs: a participant matches when, for every factor named,
    their level is one of those chosen for it. Dates are inclusive calendar days in UTC.
    """

    arms: frozenset[str] = field(default_factory=frozenset)
    strata: frozenset[str] = field(default_factory=frozenset)
    waves: frozenset[int] = field(default_factory=frozenset)
    date_from: date | None = None
    date_to: date | None = None

    def select_participants(self, participants: pd.DataFrame) -> pd.DataFrame:
        """The participants matching the arm and stratum filters."""
        keep = pd.Series(True, index=participants.index)
        if self.arms:
            keep &= participants["arm"].isin(self.arms)
        wanted: dict[str, set[str]] = {}
        for pair in self.strata:
            factor, _, level = pair.partition("=")
            wanted.setdefault(factor, set()).add(level)
        for factor, levels in wanted.items():
            keep &= participants["strata"].map(
                lambda strata, f=factor, ls=levels: isinstance(strata, dict) and strata.get(f) in ls
            )
        return participants[keep]

    def in_dates(self, instants: pd.Series) -> pd.Series:
        """A mask: which UTC instants fall within the date range."""
        keep = pd.Series(True, index=instants.index)
        if self.date_from is not None:
            keep &= instants >= _utc(self.date_from)
        if self.date_to is not None:
            keep &= instants < _utc(self.date_to) + timedelta(days=1)
        return keep & instants.notna() if (self.date_from or self.date_to) else keep


NO_FILTERS = Filters()


def _utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(day, time(0), tzinfo=UTC))


def parse_day(value: str | None) -> date | None:
    """An ISO date from a date input, or None for empty or malformed input."""
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def as_utc(series: pd.Series) -> pd.Series:
    """Instants as tz-aware UTC timestamps (SQLite hands some back naive)."""
    converted = pd.to_datetime(series, utc=True)
    return converted
