"""The rehearsal's invariants: what participants were told against what the database holds.

Each check returns a `Check` (name, passed, a one-line detail, and up to a few examples of what
failed). `run_checks` runs them all after the timeline has ended.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from itsdangerous import URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from study import audit
from study.config import Settings
from study.models import (
    Interaction,
    ItemResponse,
    Occasion,
    OutboundMessage,
    Participant,
    Response,
    SmsConversation,
)
from study.schedule.links import PATH_PREFIX, SALT

from .ledger import Ledger
from .population import Persona

SENT = ("sent", "delivered", "undelivered")
EXAMPLES = 5


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    failures: list[str] = field(default_factory=list)


def _check(name: str, failures: list[str], detail: str) -> Check:
    return Check(name, not failures, detail, failures[:EXAMPLES])


def run_checks(
    engine: Engine, settings: Settings, ledger: Ledger, people: list[Persona], ended_at: datetime
) -> list[Check]:
    """Every invariant, in the order the summary prints them."""
    with Session(engine) as session:
        codes = {p.code: p for p in people if p.code}
        ids = {
            pid: codes[code]
            for pid, code in session.execute(select(Participant.id, Participant.code))
            if code in codes
        }
        rows = session.execute(
            select(Occasion, Response, ItemResponse)
            .join(Response, Response.occasion_id == Occasion.id)
            .join(ItemResponse, ItemResponse.response_id == Response.id)
        ).all()
        messages = session.scalars(select(OutboundMessage)).all()
        occasions = session.scalars(select(Occasion)).all()
        conversations = session.scalars(select(SmsConversation)).all()
        interactions = session.scalars(select(Interaction)).all()
        chain = audit.verify_chain(list(audit.events(session)))
    return [
        web_answers_stored(ledger, rows),
        sms_answers_stored(ledger, rows, ids),
        invalid_sms_not_stored(ledger, conversations),
        nothing_stored_after_closing(rows),
        no_invitation_twice(settings, ledger, messages),
        no_invitation_lost(ledger, messages, occasions, ids, ended_at),
        nothing_after_withdrawal(ledger, people),
        no_sms_after_stop(ledger, people),
        chats_logged_per_consent(ledger, people, interactions, ids),
        Check(
            "audit chain verifies",
            not chain,
            f"{len(chain)} problems",
            [f"event {p.event_id}: {p.message}" for p in chain[:EXAMPLES]],
        ),
    ]


def web_answers_stored(ledger: Ledger, rows) -> Check:
    stored = {(o.id, f"{r.instrument_id}.{i.item_id}"): i.value for o, r, i in rows}
    failures, count = [], 0
    for occasion_id, answers in ledger.web_answers.items():
        for name, value in answers.items():
            count += 1
            if stored.get((occasion_id, name)) != float(value):
                failures.append(
                    f"occasion {occasion_id} {name}: acknowledged {value}, "
                    f"stored {stored.get((occasion_id, name))}"
                )
    return _check("every acknowledged web answer is stored", failures, f"{count} answers")


def sms_answers_stored(ledger: Ledger, rows, ids: dict[int, Persona]) -> Check:
    stored: dict[int, list] = defaultdict(list)
    for _, response, item in sorted(rows, key=lambda row: (row[2].answered_at, row[2].id)):
        if response.channel == "sms" and response.participant_id in ids:
            stored[ids[response.participant_id].index].append(item.value)
    failures = []
    for person, values in ledger.sms_answers.items():
        if [float(v) for v in values] != stored.get(person, []):
            failures.append(
                f"participant {person}: acknowledged {values}, stored {stored.get(person)}"
            )
    extra = set(stored) - set(ledger.sms_answers)
    failures += [f"participant {person}: SMS answers nobody acknowledged" for person in extra]
    count = sum(len(v) for v in ledger.sms_answers.values())
    return _check(
        "every acknowledged SMS answer is stored, in order, and nothing else",
        failures,
        f"{count} answers",
    )


def invalid_sms_not_stored(ledger: Ledger, conversations) -> Check:
    failures = [
        f"participant {person}: {sent!r} was answered {reply[:60]!r}"
        for person, sent, reply in ledger.invalid_sms
        if not reply.startswith("Sorry, please reply with one number")
    ]
    counted = sum(c.invalid_replies for c in conversations)
    if counted != len(ledger.invalid_sms):
        failures.append(f"{len(ledger.invalid_sms)} invalid replies sent, {counted} counted")
    return _check(
        "invalid SMS answers are re-asked and never stored",
        failures,
        f"{len(ledger.invalid_sms)} re-asked",
    )


def nothing_stored_after_closing(rows) -> Check:
    failures = [
        f"occasion {o.id} item {i.item_id} answered {i.answered_at:%F %T} after {o.closes_at:%F %T}"
        for o, _, i in rows
        if i.answered_at > o.closes_at
    ]
    return _check(
        "late answers see the closed page and nothing is stored",
        failures,
        "late visits shown the closed page",
    )


def _attempt_key(settings: Settings, token: str) -> str:
    return URLSafeSerializer(settings.secret_key, salt=SALT).loads(token)[1]


def no_invitation_twice(settings: Settings, ledger: Ledger, messages) -> Check:
    by_key = {m.attempt_key: m for m in messages if m.attempt_key}
    keys = Counter(_attempt_key(settings, d.token) for d in ledger.deliveries if d.token)
    failures = [f"attempt {key} arrived {n} times" for key, n in keys.items() if n > 1]
    invitations = Counter(
        by_key[key].occasion_id
        for key in keys
        if key in by_key and by_key[key].purpose == "invitation"
    )
    failures += [f"occasion {o}: {n} invitations arrived" for o, n in invitations.items() if n > 1]
    failures += [
        f"attempt {key} arrived but no outbox row has it" for key in keys if key not in by_key
    ]
    return _check(
        "no invitation was sent twice",
        failures,
        f"{sum(keys.values())} messages with links, {len(invitations)} occasions",
    )


def no_invitation_lost(ledger, messages, occasions, ids: dict[int, Persona], ended_at) -> Check:
    """Every occasion due while its participant was taking part was invited, or its invitation
    was settled with a recorded reason (quiet hours past the window, opted out, ...)."""
    arrived = {d.token for d in ledger.deliveries if d.token}
    invitation = {m.occasion_id: m for m in messages if m.purpose == "invitation"}
    failures, reasons = [], Counter()
    for occasion in occasions:
        person = ids.get(occasion.participant_id)
        if person is None or occasion.due_at > ended_at:
            continue
        if person.withdrawn_at is not None and person.withdrawn_at <= occasion.due_at:
            continue
        message = invitation.get(occasion.id)
        if message is None:
            failures.append(f"occasion {occasion.id} ({occasion.schedule_key}) has no invitation")
        elif message.status in SENT:
            if _token_of(message.body) not in arrived:
                failures.append(f"occasion {occasion.id}: invitation recorded sent, never arrived")
            else:
                reasons["sent"] += 1
        elif message.status in ("cancelled", "expired", "failed") and message.last_error:
            reasons[f"{message.status} ({message.last_error[:60]})"] += 1
        else:
            failures.append(
                f"occasion {occasion.id}: invitation {message.status} without a reason at the end"
            )
    detail = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
    return _check("no invitation was lost", failures, detail)


def _token_of(body: str) -> str | None:
    """The survey token in a stored text (an email is rendered around it, so match by link)."""
    link = next((word for word in body.split() if PATH_PREFIX in word), "")
    return link.rsplit(PATH_PREFIX, 1)[-1].rstrip(".,)") or None


def nothing_after_withdrawal(ledger: Ledger, people: list[Persona]) -> Check:
    failures = [
        f"participant {d.persona} got a {d.channel} message after withdrawing"
        for d in ledger.deliveries
        if d.persona is not None
        and people[d.persona].withdrawn_at is not None
        and d.at >= people[d.persona].withdrawn_at
    ]
    withdrawn = sum(1 for p in people if p.withdrawn_at is not None)
    return _check(
        "withdrawn participants got nothing after withdrawing", failures, f"{withdrawn} withdrew"
    )


def no_sms_after_stop(ledger: Ledger, people: list[Persona]) -> Check:
    failures = [
        f"participant {d.persona} got an SMS after STOP"
        for d in ledger.deliveries
        if d.channel == "sms"
        and d.persona is not None
        and people[d.persona].opted_out_at is not None
        and d.at >= people[d.persona].opted_out_at
    ]
    stopped = sum(1 for p in people if p.opted_out_at is not None)
    return _check(
        "opted-out participants got no SMS after STOP", failures, f"{stopped} texted STOP"
    )


def chats_logged_per_consent(ledger: Ledger, people, interactions, ids) -> Check:
    logged: dict[int, list] = defaultdict(list)
    for row in interactions:
        if row.participant_id in ids:
            logged[ids[row.participant_id].index].append(row)
    answered = Counter(person for person, shown in ledger.chats if shown)
    failures = []
    for person, count in answered.items():
        rows = logged.get(person, [])
        if len(rows) != 2 * count:
            failures.append(f"participant {person}: {count} answered chats, {len(rows)} log rows")
        with_content = sum(1 for row in rows if row.content_encrypted is not None)
        # Withdrawal erases the chat content kept so far (consent/withdrawal.py, policy "keep").
        kept = people[person].stores_chat and people[person].withdrawn_at is None
        if with_content != (len(rows) if kept else 0):
            failures.append(
                f"participant {person}: content kept in {with_content} of {len(rows)} rows, "
                f"consent {'in force' if kept else 'not given or withdrawn'}"
            )
    return _check(
        "chat turns are logged, with content only where consented",
        failures,
        f"{sum(answered.values())} chats answered of {len(ledger.chats)}",
    )
