"""Operational state: heartbeats of long-running services, read by /healthz."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from .types import UTCDateTime


class ServiceHeartbeat(SQLModel, table=True):
    __tablename__ = "service_heartbeat"

    name: str = Field(primary_key=True, max_length=100)
    host: str = Field(default="", max_length=200)
    pid: int = 0
    started_at: datetime = Field(sa_type=UTCDateTime)
    beat_at: datetime = Field(sa_type=UTCDateTime)
