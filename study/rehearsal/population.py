"""Simulated participants: who they are and how they behave, drawn from one seed.

Each `Persona` is a person with a phone, an email address, a time zone and habits: how often
they answer, by web or SMS, how often they mistype an SMS answer, whether they answer after the
window has closed, whether they text STOP or withdraw (and when), how often they chat with the
assistant, and what they tick on the consent form. The rates are `Behaviour`'s; the defaults
give a study with something of everything in a few dozen people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

# Zones with different offsets and DST rules (the US, Europe and Australia change on different
# dates in March and April, inside the rehearsal's first weeks).
TIME_ZONES = (
    "Europe/London",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
)


@dataclass(frozen=True)
class Behaviour:
    """Shares of the population (0-1) and rates; see the module docstring."""

    ineligible: float = 0.04
    comprehension_slip: float = 0.1  # answers a comprehension question wrongly first
    prefers_sms: float = 0.6  # the rest prefer email
    answer_rate: tuple[float, float] = (0.55, 0.98)  # each person's rate, uniform in this range
    answers_by_sms: float = 0.7  # when an SMS invitation offers SMS answers
    invalid_sms: float = 0.12  # per SMS reply: a mistyped answer first
    late: float = 0.04  # per occasion: answers only after the window closed
    opts_out: float = 0.05  # texts STOP one day (SMS people)
    withdraws: float = 0.06
    stores_chat: float = 0.5  # consents to chat content being stored
    ema: float = 0.1  # opts in to the first week's momentary questions
    chats_per_week: tuple[float, float] = (0.0, 3.0)  # in assistant arms
    enrollment_hours: float = 36.0  # people arrive over this many hours


@dataclass
class Persona:
    """One simulated participant (their study code is learnt when they enrol)."""

    index: int
    phone: str
    email: str
    channel: str
    timezone: str
    age: int
    eligible: bool
    comprehension_slip: bool
    stores_chat: bool
    ema: bool
    answer_rate: float
    answers_by_sms: float
    invalid_sms: float
    late: float
    opt_out_after: timedelta | None
    withdraw_after: timedelta | None
    withdraw_by: str
    chats_per_week: float
    arrives_after: timedelta
    rng: random.Random = field(repr=False)
    code: str = ""
    arm: str = ""
    portal_path: str = ""
    enrolled_at: object = None
    opted_out_at: object = None
    withdrawn_at: object = None

    @property
    def active(self) -> bool:
        return bool(self.code) and self.withdrawn_at is None


def make_population(count: int, seed: int, behaviour: Behaviour | None = None) -> list[Persona]:
    """`count` personas; the same seed gives the same people."""
    b = behaviour or Behaviour()
    master = random.Random(seed)
    people = []
    for index in range(count):
        rng = random.Random(master.getrandbits(64))
        channel = "sms" if rng.random() < b.prefers_sms else "email"
        people.append(
            Persona(
                index=index,
                # +44 7700 9xxxxx: UK mobile numbers; the 900xxx block is Ofcom's drama range.
                phone=f"+4477009{index:05d}",
                email=f"participant{index:05d}@rehearsal.example.org",
                channel=channel,
                timezone=rng.choice(TIME_ZONES),
                age=rng.randint(18, 75),
                eligible=rng.random() >= b.ineligible,
                comprehension_slip=rng.random() < b.comprehension_slip,
                stores_chat=rng.random() < b.stores_chat,
                ema=rng.random() < b.ema,
                answer_rate=rng.uniform(*b.answer_rate),
                answers_by_sms=b.answers_by_sms,
                invalid_sms=b.invalid_sms,
                late=b.late,
                opt_out_after=_some_day(rng)
                if channel == "sms" and rng.random() < b.opts_out
                else None,
                withdraw_after=_some_day(rng) if rng.random() < b.withdraws else None,
                withdraw_by="sms" if channel == "sms" and rng.random() < 0.5 else "portal",
                chats_per_week=rng.uniform(*b.chats_per_week),
                arrives_after=timedelta(hours=rng.uniform(0, b.enrollment_hours)),
                rng=rng,
            )
        )
    return people


def _some_day(rng: random.Random) -> timedelta:
    """A moment in the 24 weeks after enrollment."""
    return timedelta(days=rng.uniform(3, 24 * 7))
