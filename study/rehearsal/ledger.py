"""What the simulated participants did and were told: the record the checks compare with the
database after the rehearsal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Delivery:
    """A message the outside world received: SMS at the gateway or mail at the SMTP server."""

    channel: str
    to: str
    body: str
    at: datetime
    persona: int | None
    occasion_id: int | None
    token: str | None


@dataclass
class Ledger:
    """What the participants did and were told, for the checks and the summary."""

    deliveries: list[Delivery] = field(default_factory=list)
    web_answers: dict[int, dict[str, str]] = field(default_factory=dict)
    # By person, in the order acknowledged: with two conversations open, a reply answers the one
    # that asked last (docs/sms.md), so the occasion is the database's to say.
    sms_answers: dict[int, list[float]] = field(default_factory=dict)
    invalid_sms: list[tuple[int, str, str]] = field(default_factory=list)  # person, sent, reply
    late: list[tuple[int, str]] = field(default_factory=list)  # occasion, page shown
    chats: list[tuple[int, bool]] = field(default_factory=list)  # persona, reply shown
    problems: list[str] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)
    ticks: int = 0
