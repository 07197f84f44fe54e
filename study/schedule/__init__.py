"""Participants' schedules: planning occasions in local time, writing them, and dispatch.

    plan_occasions(protocol, enrolled_at=..., timezone="Europe/London", seed="...")  # pure
    materialise(session, participant, protocol, version_id, now=..., seed=...)  # at enrollment
    replan(session, participant, protocol, version_id, now=..., seed=...)  # zone or amendment
    change_time_zone(session, participant, "Asia/Kolkata", now=..., actor=..., secret_key=...)
    extend_horizon(session, now)  # the rolling horizon, run by the ticker

See docs/scheduling.md.
"""

from ..protocol.registry import ProtocolCache
from .horizon import (
    DEFAULT_BATCH,
    ExtendOutcome,
    HorizonTask,
    extend_horizon,
    horizon_task,
)
from .materialise import (
    DEFAULT_HORIZON,
    EMA_CONSENT_ITEM,
    ReplanResult,
    ScheduleError,
    TimeZoneChange,
    TimeZoneError,
    change_time_zone,
    ema_opted_in,
    lock_participant,
    materialise,
    message_channels,
    participant_seed,
    replan,
    schedule_seed,
)
from .planning import BASELINE_OPEN_FOR, PlannedOccasion, ema_minutes, plan_occasions

__all__ = [
    "BASELINE_OPEN_FOR",
    "DEFAULT_BATCH",
    "DEFAULT_HORIZON",
    "EMA_CONSENT_ITEM",
    "ExtendOutcome",
    "HorizonTask",
    "PlannedOccasion",
    "ProtocolCache",
    "ReplanResult",
    "ScheduleError",
    "TimeZoneChange",
    "TimeZoneError",
    "change_time_zone",
    "ema_minutes",
    "ema_opted_in",
    "extend_horizon",
    "horizon_task",
    "lock_participant",
    "materialise",
    "message_channels",
    "participant_seed",
    "plan_occasions",
    "replan",
    "schedule_seed",
]
