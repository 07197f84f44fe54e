"""The rehearsal's timeline: one clock for the app, the dispatcher and the participants.

`Rehearsal.run()` registers the rehearsal protocol, then walks a `FakeClock` from the first
arrival until the last follow-up window has closed. At each instant it runs the participants'
actions that are due (enrolling, answering, texting STOP or WITHDRAW, withdrawing, chatting),
then a scheduler tick (`study.scheduler.tick_once` with the standard tasks, the dispatcher's
channels pointed at the rehearsal's SMS gateway and SMTP server), then hands every message the
outside world received to its recipient, who decides what to do and when. The clock then jumps
to the next thing that can happen: a participant's next action, the next message due in the
outbox (15 simulated seconds while the send budget is the limit), or at most `max_step`.

Everything the participants were told is written into a `Ledger`, which `checks` compares with
the database afterwards.
"""

from __future__ import annotations

import heapq
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from study.channels import build_channels
from study.clock import FakeClock
from study.config import Settings
from study.models import Allocation, Arm, Occasion, OutboundMessage, Participant
from study.protocol.registry import ProtocolCache, register_protocol
from study.schedule.dispatch import DispatchPolicy, DispatchReport, dispatch_due
from study.schedule.links import PATH_PREFIX, verify_survey_token
from study.scheduler import Beater, TickTask, standard_tasks, tick_once
from study.web import create_app

from .actions import Browser, JourneyError, Phone
from .ledger import Delivery, Ledger
from .population import Behaviour, Persona, make_population
from .protocol import rehearsal_protocol
from .sms import SmsAnswerer

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# The last follow-up (week 24) has a 7-day window; participants arrive over the first days.
DEFAULT_DAYS = 24 * 7 + 10
RATE_STEP = timedelta(seconds=15)
SMS_OFFER = "Or answer here by text"


@dataclass(frozen=True)
class RehearsalConfig:
    participants: int = 500
    seed: int = 1
    start: datetime = START
    days: float = DEFAULT_DAYS
    max_step: timedelta = timedelta(hours=12)
    behaviour: Behaviour = field(default_factory=Behaviour)


class Rehearsal:
    """One rehearsal on `engine` (migrated, empty) with the outside world plugged in:
    `sms_gateway` (a `twilio` HttpClient with `.messages`), `mail` (a `MailSink`) and the
    OpenAI-compatible `assistant_base_url`. `settings` must carry Twilio credentials, a
    `twilio_from` number and the SMTP host and port of `mail`. A gateway with a `clock`
    attribute (the test suite's `FakeTwilio`) is given the rehearsal's clock."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        sms_gateway,
        mail,
        assistant_base_url: str,
        config: RehearsalConfig | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or RehearsalConfig()
        self.engine, self.settings = engine, settings
        self.sms_gateway, self.mail = sms_gateway, mail
        self.clock = FakeClock(self.config.start)
        if hasattr(sms_gateway, "clock"):
            sms_gateway.clock = self.clock
        self.protocol = rehearsal_protocol(assistant_base_url)
        self.app = create_app(settings, engine=engine, clock=self.clock)
        self.people = make_population(
            self.config.participants, self.config.seed, self.config.behaviour
        )
        self.by_address = {p.phone: p for p in self.people} | {p.email: p for p in self.people}
        self.browsers = {
            p.index: Browser(self.app, p, self.protocol.model.study.slug) for p in self.people
        }
        self.phone = Phone(
            self.app, settings.public_url, settings.twilio_auth_token, settings.twilio_from
        )
        self.sms = SmsAnswerer(self.phone)
        self.ledger = Ledger()
        self.progress = progress or (lambda line: None)
        self._queue: list = []
        self._order = itertools.count()
        self._seen = {"sms": 0, "email": 0}
        self._decided: set[tuple[int, int]] = set()
        self._report = DispatchReport()
        self.wall_seconds = 0.0
        self.ended_at = self.config.start

    # --- set-up ---------------------------------------------------------------------------------

    def _tasks(self) -> list[TickTask]:
        channels = build_channels(
            self.settings, twilio_http_client=self.sms_gateway, clock=self.clock
        )
        policy, protocols = DispatchPolicy.from_settings(self.settings), ProtocolCache()

        def dispatch(engine: Engine, now: datetime) -> None:
            self._report = dispatch_due(
                engine,
                channels,
                self.settings,
                now=now,
                owner="rehearsal",
                policy=policy,
                protocols=protocols,
            )

        others = [task for task in standard_tasks(self.settings) if task.name != "dispatch"]
        return [TickTask("dispatch", dispatch), *others]

    def _at(self, when: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action))

    # --- the timeline ---------------------------------------------------------------------------

    def run(self) -> Ledger:
        started = time.monotonic()
        with Session(self.engine) as session:
            register_protocol(session, self.protocol, actor="rehearsal")
            session.commit()
        for person in self.people:
            self._at(self.config.start + person.arrives_after, lambda p=person: self._enrol(p))
        tasks, beater = self._tasks(), Beater(started_at=self.clock.now())
        end = self.config.start + timedelta(days=self.config.days)
        last_tick, next_day = None, self.config.start + timedelta(days=7)
        while self.clock.now() < end:
            now = self.clock.now()
            while self._queue and self._queue[0][0] <= now:
                heapq.heappop(self._queue)[2]()
            due = self._next_send()
            if (
                last_tick is None
                or (due is not None and due <= now)
                or now - last_tick >= self.config.max_step
            ):
                tick_once(self.engine, self.clock, tasks, beater=beater)
                self.ledger.ticks += 1
                last_tick = now
                self._deliver()
                due = self._next_send()
            if now >= next_day:
                self.progress(self._progress_line(now, started))
                next_day += timedelta(days=7)
            candidates = [last_tick + self.config.max_step, end]
            if self._queue:
                candidates.append(self._queue[0][0])
            if due is not None and due > now:
                candidates.append(due)
            elif due is not None and self._report.claimed:
                # Due but not sent yet (a full batch, or the send budget): as the real ticker.
                candidates.append(now + RATE_STEP)
            self.clock.set(max(min(candidates), now + timedelta(seconds=1)))
        self.ended_at = self.clock.now()
        self.wall_seconds = time.monotonic() - started
        return self.ledger

    def _next_send(self) -> datetime | None:
        with Session(self.engine) as session:
            return session.execute(
                select(func.min(OutboundMessage.send_after)).where(
                    OutboundMessage.status == "pending"
                )
            ).scalar_one()

    def _progress_line(self, now: datetime, started: float) -> str:
        enrolled = sum(1 for p in self.people if p.code)
        day = (now - self.config.start).total_seconds() / 86400
        return (
            f"day {day:5.1f}: {enrolled} enrolled, {len(self.ledger.deliveries)} messages, "
            f"{sum(self.ledger.answers.values())} answers, {self.ledger.ticks} ticks, "
            f"{time.monotonic() - started:.0f} s"
        )

    # --- participants' actions ------------------------------------------------------------------

    def _guard(self, person: Persona, what: str, action: Callable[[], None]) -> None:
        """Run a participant's action; what goes wrong is a finding, not the end of the run."""
        try:
            action()
        except JourneyError as exc:
            self.ledger.problems.append(f"participant {person.index} {what}: {exc}")
        except Exception as exc:  # a server error (500) on one of the pages
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self.ledger.problems.append(
                f"participant {person.index} {what}: server error {type(exc).__name__}: {first}"
            )

    def _enrol(self, person: Persona) -> None:
        comprehension = {q.id: q.correct for q in self.protocol.model.consent.comprehension}

        def enrol() -> None:
            if not self.browsers[person.index].enrol(comprehension, person.rng.choice):
                return
            person.enrolled_at = self.clock.now()
            person.arm = self._arm_of(person.code)
            self._plan_life(person)

        self._guard(person, "enrolling", enrol)

    def _arm_of(self, code: str) -> str:
        with Session(self.engine) as session:
            return session.execute(
                select(Arm.key)
                .join(Allocation, Allocation.arm_id == Arm.id)
                .join(Participant, Participant.id == Allocation.participant_id)
                .where(Participant.code == code)
            ).scalar_one()

    def _plan_life(self, person: Persona) -> None:
        """Opting out, withdrawing and chatting, at moments drawn at enrollment."""
        start = person.enrolled_at
        if person.opt_out_after is not None:
            self._at(start + person.opt_out_after, lambda: self._opt_out(person))
        if person.withdraw_after is not None:
            self._at(start + person.withdraw_after, lambda: self._withdraw(person))
        if person.arm == "control":
            return
        for week in range(12):
            for _ in range(_poisson(person.rng, person.chats_per_week)):
                when = start + timedelta(weeks=week, seconds=person.rng.uniform(0, 7 * 86400))
                self._at(when, lambda: self._chat(person))

    def _opt_out(self, person: Persona) -> None:
        if person.withdrawn_at is None:
            self.phone.send(person.phone, "STOP")
            person.opted_out_at = self.clock.now()

    def _withdraw(self, person: Persona) -> None:
        if person.withdrawn_at is not None:
            return
        if person.withdraw_by == "sms":
            self.phone.send(person.phone, "WITHDRAW")
        else:
            self._guard(person, "withdrawing", self.browsers[person.index].withdraw)
        person.withdrawn_at = self.clock.now()

    def _chat(self, person: Persona) -> None:
        if person.withdrawn_at is not None:
            return
        words = " ".join(person.rng.choice(_WORDS) for _ in range(person.rng.randint(3, 30)))

        def chat() -> None:
            self.ledger.chats.append((person.index, self.browsers[person.index].chat(words)))

        self._guard(person, "chatting", chat)

    # --- messages -------------------------------------------------------------------------------

    def _deliver(self) -> None:
        now = self.clock.now()
        arrived = [("sms", m.to, m.body) for m in self.sms_gateway.messages[self._seen["sms"] :]]
        arrived += [("email", m.to[0], m.body) for m in self.mail.mails[self._seen["email"] :]]
        self._seen = {"sms": len(self.sms_gateway.messages), "email": len(self.mail.mails)}
        for channel, to, body in arrived:
            person = self.by_address.get(to)
            token = _token_in(body, self.settings.public_url)
            occasion_id = verify_survey_token(self.settings, token) if token else None
            self.ledger.deliveries.append(
                Delivery(
                    channel, to, body, now, person.index if person else None, occasion_id, token
                )
            )
            if person is not None and occasion_id is not None:
                self._consider(person, channel, body, token, occasion_id)

    def _consider(self, person: Persona, channel: str, body: str, token: str, occasion_id: int):
        """A person reads an invitation (or a reminder) and decides, once per occasion."""
        if (person.index, occasion_id) in self._decided or person.withdrawn_at is not None:
            return
        self._decided.add((person.index, occasion_id))
        with Session(self.engine) as session:
            closes_at = session.get(Occasion, occasion_id).closes_at
        now, rng = self.clock.now(), person.rng
        path = PATH_PREFIX + token
        if rng.random() < person.late:
            when = closes_at + timedelta(minutes=rng.uniform(10, 24 * 60))
            self._at(when, lambda: self._late(person, path, occasion_id))
            return
        if rng.random() >= person.answer_rate:
            return
        window = max(timedelta(0), closes_at - now)
        when = now + min(window * rng.uniform(0.02, 0.6), timedelta(hours=30))
        by_sms = channel == "sms" and SMS_OFFER in body and rng.random() < person.answers_by_sms
        if by_sms:
            question = body.split(SMS_OFFER, 1)[1].split("\n", 1)[-1]
            self._at(when, lambda: self._answer_by_sms(person, question))
        else:
            self._at(when, lambda: self._answer_on_web(person, path, occasion_id))

    def _answer_on_web(self, person: Persona, path: str, occasion_id: int) -> None:
        def answer() -> None:
            result = self.browsers[person.index].answer_survey(path, person.rng.choice)
            if result.acknowledged:
                self.ledger.web_answers.setdefault(occasion_id, {}).update(result.acknowledged)
            self.ledger.answers[f"web {result.status}"] += 1

        self._guard(person, "answering on the web", answer)

    def _answer_by_sms(self, person: Persona, question: str) -> None:
        def answer() -> None:
            outcome = self.sms.converse(person, question)
            self.ledger.sms_answers.setdefault(person.index, []).extend(outcome.values)
            self.ledger.invalid_sms += [
                (person.index, sent, reply) for sent, reply in outcome.invalid
            ]
            if outcome.status.startswith("unanswerable"):
                raise JourneyError(f"SMS survey: {outcome.status} (no allowed range given)")
            self.ledger.answers[f"sms {outcome.status}"] += 1

        self._guard(person, "answering by SMS", answer)

    def _late(self, person: Persona, path: str, occasion_id: int) -> None:
        # Late answers are tried on the web: a late SMS digit would answer whichever
        # conversation asked last, which is the SMS surveys' documented routing, not lateness.
        status = self.browsers[person.index].open_late(path)
        self.ledger.late.append((occasion_id, "closed" if status == 410 else str(status)))


def _token_in(body: str, public_url: str) -> str | None:
    match = re.search(re.escape(public_url + PATH_PREFIX) + r"([A-Za-z0-9_.\-]+)", body)
    return match.group(1) if match else None


def _poisson(rng, mean: float) -> int:
    """A Poisson draw by counting exponential gaps (small means only)."""
    count, total = 0, rng.expovariate(1.0) if mean > 0 else float("inf")
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


_WORDS = (
    "today",
    "I",
    "felt",
    "tired",
    "walked",
    "with",
    "a",
    "friend",
    "work",
    "was",
    "busy",
    "plan",
    "goal",
    "sleep",
    "better",
    "evening",
    "call",
    "family",
    "read",
    "book",
)
