"""The dispatcher: claims due messages from the outbox and sends each at most once.

Every tick, `dispatch_due` claims a batch of due `OutboundMessage` rows under a lease and then
handles each claimed row on its own:

1. **Claim** (one short transaction). PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so
   concurrent dispatchers take disjoint rows without waiting for each other. SQLite (one writer)
   and anything else: a compare-and-set `UPDATE ... WHERE id = ? AND <still claimable>` per
   candidate; rowcount 1 means the row is ours. Claimable: `pending` with `send_after <= now`, or
   `sending` whose lease has expired (a dispatcher died holding it).
2. **Prepare** (one transaction, beginning with a write to the row so that it is ours for the
   whole transaction). Re-check everything that may have changed since the row was planned:
   participant still enrolled, consent active, contact point present and not opted out, occasion
   neither completed nor cancelled, window still open, not quiet hours, a token in the channel's
   rate budget. Then render the text with a survey link whose nonce is a fresh random
   *attempt key*, and write key, text and `attempts + 1` to the row; commit.
3. **Send**, with no transaction open.
4. **Record** (one transaction): provider id, `sent`, `sent_at`, lease cleared, the occasion
   `sent`; guarded by the attempt key, not the lease, so a slow dispatcher still records what
   truly happened.

Crash safety. A row whose `attempt_key` is set may have reached the provider, because the key is
committed before sending. Before such a row is sent again, the channel is asked
(`find_sent(to, since=, body=)`) for a message with exactly the committed text: the text holds
the survey link, which holds the key, so it identifies this attempt and no other. Found: the row
is recorded as sent with that provider id and nothing is resent. So:

- crash between claim and prepare/send: the row waits in `sending` until the lease expires; the
  next dispatcher claims it, finds no key (or a key the provider never saw) and sends it once;
- crash between send and record: the next dispatcher finds the message at the provider and
  records it without resending;
- a transient error (timeout: did it go?) keeps the key, so the retry checks first as well.

What remains, honestly:

- Channels that cannot be asked (SMTP: `supports_status_lookup` false) are at-least-once: after
  a crash in the instant between the server accepting a message and our commit, the message is
  sent again. The Message-ID is recorded as the provider id, so a duplicate can be traced.
- The lookup must not race a send still in flight. A dispatcher fences each send no later than
  `lease - send_margin` after its tick (`send_margin` covers the channel's HTTP timeout plus the
  clock skew between hosts) and gives the rest of its batch back, so a lease is never taken over
  while its holder may still be talking to the provider. Keep hosts on NTP.
- Messages without an occasion carry their text verbatim, so two identical texts to one person
  within the lookup window cannot be told apart by the provider check.

Rate limits are token buckets in the `send_budget` table, one per channel, shared by every
dispatcher on every host (Twilio long codes: about one segment per second).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from consent import current_consent
from study import sms_surveys
from study.channels import (
    STATUS_CALLBACK_PATH,
    PermanentSendError,
    SendResult,
    StatusLookupUnsupported,
    TransientSendError,
    build_channels,
    opt_out_participant,
    render_invitation,
)
from study.channels.status import PROVIDER_STATUS
from study.config import Settings
from study.db import unit_of_work
from study.models import ContactPoint, Occasion, OutboundMessage, Participant, ProtocolVersion
from study.models.schedule import SendBudget
from study.pii import PiiError, PiiVault
from study.protocol import Protocol
from study.protocol.registry import ProtocolCache, current_version, protocol_cache

from .links import survey_link
from .localtime import out_of_quiet_hours, zone

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=2)

# Measures how long a batch has taken, to stop fencing sends before the lease runs short; a
# module attribute so that tests can simulate a slow batch without sleeping.
monotonic = time.monotonic


# --- policy and report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchPolicy:
    """How fast, how often and how patiently to send. `from_settings` reads the deployment's.

    `rates` are messages per second per channel (absent or None: unlimited) and `bursts` how many
    may go at once after a quiet spell (default: one tick's worth). Retries wait
    `retry_base * 2**(attempts - 1)`, at most `retry_cap`; after `max_attempts` a message fails.
    """

    rates: Mapping[str, float | None] = field(default_factory=lambda: {"sms": 1.0, "email": 5.0})
    bursts: Mapping[str, float] = field(default_factory=dict)
    tick_seconds: float = 15.0
    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(hours=1)
    max_attempts: int = 5
    send_margin: timedelta = timedelta(seconds=60)
    lookup_slack: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchPolicy:
        """The policy from settings: `FLOURISH_SMS_PER_SECOND` (default 1) and
        `FLOURISH_EMAIL_PER_SECOND` (5; 0 means unlimited), `FLOURISH_SEND_MAX_ATTEMPTS` (5),
        `FLOURISH_SEND_RETRY_SECONDS` (30)."""
        rates = {
            "sms": settings.sms_per_second or None,
            "email": settings.email_per_second or None,
        }
        return cls(
            rates=rates,
            tick_seconds=settings.scheduler_tick_seconds,
            max_attempts=settings.send_max_attempts,
            retry_base=timedelta(seconds=settings.send_retry_seconds),
        )

    def burst(self, channel: str, rate: float) -> float:
        return max(1.0, self.bursts.get(channel, rate * self.tick_seconds))

    def backoff(self, attempts: int) -> timedelta:
        return min(self.retry_base * 2 ** max(0, attempts - 1), self.retry_cap)


@dataclass
class DispatchReport:
    """What one `dispatch_due` call did, message by message outcome counts."""

    claimed: int = 0
    sent: int = 0
    recovered: int = 0
    cancelled: int = 0
    expired: int = 0
    deferred_quiet: int = 0
    deferred_rate: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in asdict(self).items() if count)


def dispatcher_owner() -> str:
    """This process as a lease owner: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


# --- the entry point ------------------------------------------------------------------------------


def dispatch_due(
    engine: Engine,
    channels: Mapping[str, object],
    settings: Settings,
    *,
    now: datetime,
    owner: str,
    batch: int = 100,
    lease: timedelta = DEFAULT_LEASE,
    policy: DispatchPolicy | None = None,
    protocols: ProtocolCache | None = None,
) -> DispatchReport:
    """Claim up to `batch` due messages as of `now` under `owner`'s lease and deal with each.

    Safe to run concurrently in any number of processes on any number of hosts. Never raises
    for one message's trouble (that is recorded on the row); raises only if the claim fails.
    """
    if lease <= timedelta(0):
        raise ValueError("the lease must be positive")
    policy = policy or DispatchPolicy.from_settings(settings)
    run = _Run(
        engine=engine,
        channels=channels,
        settings=settings,
        now=now,
        owner=owner,
        lease=lease,
        policy=policy,
        protocols=protocol_cache(protocols),
    )
    claimed = claim_due(engine, now=now, owner=owner, batch=batch, lease=lease)
    run.report.claimed = len(claimed)
    # Past this point a send could outlive the lease while another dispatcher takes it over.
    fence_until = monotonic() + max(0.0, (lease - policy.send_margin).total_seconds())
    for index, message_id in enumerate(claimed):
        if monotonic() > fence_until:
            run.report.released += release(engine, claimed[index:], owner=owner)
            break
        try:
            run.handle(message_id)
        except Exception:
            log.exception("dispatching message %s failed; it will be retried", message_id)
            run.give_back_after_error(message_id)
    if run.report.claimed:
        log.info("dispatch at %s by %s: %s", now.isoformat(), owner, run.report)
    return run.report


def claim_due(
    engine: Engine, *, now: datetime, owner: str, batch: int, lease: timedelta
) -> list[int]:
    """Atomically take up to `batch` due rows (oldest first) for `owner`; their ids."""
    message = OutboundMessage
    claimable = or_(
        (col(message.status) == "pending") & (col(message.send_after) <= now),
        (col(message.status) == "sending")
        & (col(message.lease_expires_at).is_(None) | (col(message.lease_expires_at) <= now)),
    )
    take = {"status": "sending", "lease_owner": owner, "lease_expires_at": now + lease}
    candidates = (
        select(message.id)
        .where(claimable)
        .order_by(col(message.send_after), col(message.id))
        .limit(batch)
    )
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            ids = list(connection.execute(candidates.with_for_update(skip_locked=True)).scalars())
            if ids:
                connection.execute(update(message).where(col(message.id).in_(ids)).values(**take))
            return ids
    # Compare-and-set: a candidate someone else claimed meanwhile no longer matches `claimable`.
    with engine.connect() as connection:
        ids = list(connection.execute(candidates).scalars())
    claimed = []
    if ids:
        with engine.begin() as connection:
            for message_id in ids:
                changed = connection.execute(
                    update(message).where(message.id == message_id, claimable).values(**take)
                )
                if changed.rowcount == 1:
                    claimed.append(message_id)
    return claimed


def release(engine: Engine, message_ids: list[int], *, owner: str) -> int:
    """Give claimed rows back untouched (still pending, due at once); how many were ours."""
    if not message_ids:
        return 0
    with engine.begin() as connection:
        changed = connection.execute(
            update(OutboundMessage)
            .where(
                col(OutboundMessage.id).in_(message_ids),
                OutboundMessage.status == "sending",
                OutboundMessage.lease_owner == owner,
            )
            .values(status="pending", lease_owner="", lease_expires_at=None)
        )
    return changed.rowcount


# --- one message ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attempt:
    """A message ready to go (or to be looked up): everything the channel needs, and the key."""

    message_id: int
    channel: str
    to: str
    body: str
    subject: str | None
    key: str
    started_at: datetime
    lookup_only: bool = False
    # Set when a delivery report for this attempt arrived before we recorded the send.
    provider_message_id: str = ""


@dataclass
class _Run:
    engine: Engine
    channels: Mapping[str, object]
    settings: Settings
    now: datetime
    owner: str
    lease: timedelta
    policy: DispatchPolicy
    protocols: ProtocolCache
    report: DispatchReport = field(default_factory=DispatchReport)
    # Channels whose bucket ran dry: `now` is fixed for the run, so it cannot refill before the
    # next one.
    exhausted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.vault = PiiVault(self.settings.pii_key)

    def handle(self, message_id: int) -> None:
        attempt = self.prepare(message_id, look_up_first=True)
        if attempt is not None and attempt.lookup_only:
            if self.look_up(attempt):
                return
            attempt = self.prepare(message_id, look_up_first=False)
        if attempt is not None:
            self.send(attempt)

    # -- prepare: re-check, render, fence ------------------------------------------------------

    def prepare(self, message_id: int, *, look_up_first: bool) -> _Attempt | None:
        """Re-check the row in one transaction; an attempt to make, or None if settled here."""
        with unit_of_work(self.engine) as session:
            # Write first: the row is then ours until commit (row lock on PostgreSQL, the write
            # lock on SQLite), so a withdrawal cannot slip between these checks and the fence.
            held = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == message_id,
                    OutboundMessage.status == "sending",
                    OutboundMessage.lease_owner == self.owner,
                )
                .values(lease_expires_at=self.now + self.lease)
            )
            if held.rowcount != 1:
                self.report.lost += 1
                return None
            message = session.get(OutboundMessage, message_id)
            participant = session.get(Participant, message.participant_id)
            occasion = session.get(Occasion, message.occasion_id) if message.occasion_id else None
            contact = session.execute(
                select(ContactPoint).where(
                    ContactPoint.participant_id == message.participant_id,
                    ContactPoint.kind == message.channel,
                )
            ).scalar_one_or_none()
            to = self._recipient(contact)

            if (
                look_up_first
                and message.attempt_key
                and (message.provider_message_id or (to and self._can_look_up(message)))
            ):
                return _Attempt(
                    message.id,
                    message.channel,
                    to or "",
                    message.body,
                    None,
                    message.attempt_key,
                    message.attempt_started_at or self.now,
                    lookup_only=True,
                    provider_message_id=message.provider_message_id,
                )
            reason = self._why_not(session, message, participant, occasion, contact, to)
            if reason is not None:
                self._settle_unsendable(session, message, occasion, reason)
                return None
            protocol = self._protocol(session, participant)
            quiet_until = end_of_quiet_hours(protocol, participant.timezone, self.now)
            if quiet_until is not None:
                self._defer(message, quiet_until)
                self.report.deferred_quiet += 1
                return None
            if not self._take_token(session, message.channel):
                self._defer(message, message.send_after)
                self.report.deferred_rate += 1
                return None

            key = secrets.token_urlsafe(12)
            subject, body = self._render(session, message, occasion, participant, protocol, key)
            message.attempt_key = key
            message.attempt_started_at = self.now
            message.attempts += 1
            message.body = body
            message.last_error = ""
            session.add(message)
            return _Attempt(message.id, message.channel, to, body, subject, key, self.now)

    def _why_not(self, session, message, participant, occasion, contact, to) -> str | None:
        """Why this message must not go now (cancelled or expired), or None if it may."""
        if participant is None or participant.status != "enrolled":
            status = participant.status if participant else "gone"
            return f"cancelled: participant {status}"
        if current_consent(session, participant) is None:
            return "cancelled: no active consent"
        if occasion is not None and occasion.status in ("completed", "cancelled"):
            return f"cancelled: occasion {occasion.status}"
        closes = message.expires_at or (occasion.closes_at if occasion else None)
        if (closes is not None and self.now >= closes) or (
            occasion is not None and occasion.status == "missed"
        ):
            return "expired: window closed"
        if message.channel not in self.channels:
            return f"failed: no {message.channel!r} channel is configured"
        if contact is None:
            return f"cancelled: no {message.channel} contact"
        if contact.opted_out_at is not None:
            return f"cancelled: {message.channel} opted out"
        if to is None:
            return f"failed: the stored {message.channel} contact cannot be read"
        return None

    def _settle_unsendable(self, session, message, occasion, reason: str) -> None:
        status = reason.split(":", 1)[0]
        message.status = status
        message.last_error = reason[:500]
        message.status_updated_at = self.now
        message.lease_owner = ""
        message.lease_expires_at = None
        session.add(message)
        if status == "expired":
            self.report.expired += 1
            if occasion is not None:
                # Missed only if nothing ever reached the participant: a sent occasion that closes
                # unanswered is settled by whoever closes windows, not by its last reminder.
                session.execute(
                    update(Occasion)
                    .where(
                        Occasion.id == occasion.id,
                        Occasion.status == "scheduled",
                        col(Occasion.closes_at) <= self.now,
                    )
                    .values(status="missed")
                )
        elif status == "failed":
            self.report.failed += 1
        else:
            self.report.cancelled += 1

    def _defer(self, message: OutboundMessage, until: datetime) -> None:
        message.status = "pending"
        message.send_after = until
        message.lease_owner = ""
        message.lease_expires_at = None

    def _recipient(self, contact: ContactPoint | None) -> str | None:
        if contact is None:
            return None
        try:
            return self.vault.decrypt(contact.value_encrypted)
        except PiiError:
            log.error("contact point %s cannot be decrypted with FLOURISH_PII_KEY", contact.id)
            return None

    def _can_look_up(self, message: OutboundMessage) -> bool:
        channel = self.channels.get(message.channel)
        return bool(channel is not None and getattr(channel, "supports_status_lookup", False))

    def _protocol(self, session: Session, participant: Participant) -> Protocol:
        # Amendments apply to everyone taking part (as on the participant's pages): quiet hours
        # and wording come from the version in force.
        version = current_version(session, participant.study_id)
        if version is None:
            version = session.get(ProtocolVersion, participant.protocol_version_id)
        return self.protocols.load(version)

    def _render(
        self, session, message, occasion, participant, protocol, key
    ) -> tuple[str | None, str]:
        if occasion is None:
            return None, message.body
        link = survey_link(self.settings, occasion.id, nonce=key)
        subject, body = render_invitation(
            occasion, participant, protocol, link, message.purpose, channel=message.channel
        )
        if message.channel == "sms":
            # An SMS-answerable occasion: the question goes with the link, and the conversation
            # opens in this transaction, committed with the attempt key before the send. The
            # link (holding the key) stays in the text, so the crash lookup is unchanged.
            body = sms_surveys.start_or_resume(
                session,
                occasion=occasion,
                participant=participant,
                protocol=protocol,
                invitation=body,
                purpose=message.purpose,
                now=self.now,
            )
        return subject, body

    def _take_token(self, session: Session, channel: str) -> bool:
        rate = self.policy.rates.get(channel)
        if rate is None:
            return True
        if channel in self.exhausted:
            return False
        taken = take_send_token(
            session, channel, now=self.now, rate=rate, burst=self.policy.burst(channel, rate)
        )
        if not taken:
            self.exhausted.add(channel)
        return taken

    # -- the provider ------

    def look_up(self, attempt: _Attempt) -> bool:
        """Ask the provider whether an earlier attempt went out; True if that settled the row."""
        if attempt.provider_message_id:
            # The provider reported on this very attempt (its callback carried the key): sent.
            if self.record_sent(attempt, SendResult(attempt.provider_message_id)):
                self.report.recovered += 1
            return True
        channel = self.channels[attempt.channel]
        since = attempt.started_at - self.policy.lookup_slack
        try:
            found = channel.find_sent(attempt.to, since=since, body=attempt.body)
        except StatusLookupUnsupported:
            log.warning("message %s: %s cannot be asked; resending", attempt.message_id, channel)
            return False
        except TransientSendError as error:
            # Never give up on (or resend) a message that may have gone: ask again later.
            self.retry_later(attempt, f"provider lookup: {error}", an_attempt=False)
            return True
        if found is None:
            log.info("message %s: earlier attempt not at the provider; sending", attempt.message_id)
            return False
        log.warning(
            "message %s was sent before a crash (%s); recorded, not resent",
            attempt.message_id,
            found.provider_message_id,
        )
        if self.record_sent(attempt, found):
            self.report.recovered += 1
        return True

    def send(self, attempt: _Attempt) -> None:
        channel = self.channels[attempt.channel]
        try:
            result = channel.send(
                attempt.to,
                attempt.body,
                subject=attempt.subject,
                status_callback=status_callback_url(self.settings, attempt),
            )
        except PermanentSendError as error:
            self.fail(attempt, error)
            return
        except TransientSendError as error:
            self.retry_later(attempt, str(error))
            return
        except Exception as error:
            # An unknown failure may have happened after the provider accepted: keep the key so
            # the retry asks first.
            log.exception("channel %s raised while sending message %s", channel, attempt.message_id)
            self.retry_later(attempt, f"{type(error).__name__}: {error}")
            return
        if self.record_sent(attempt, result):
            self.report.sent += 1

    # -- record ------

    def record_sent(self, attempt: _Attempt, result: SendResult) -> bool:
        """Record that `attempt` reached the provider, whoever holds the lease by now."""
        # The provider's word when it has one (a message found after a crash may have been
        # delivered by now); "queued"/"accepted" and the like are simply sent.
        status = PROVIDER_STATUS.get(result.status, "sent")
        sent_at = attempt.started_at if attempt.lookup_only else self.now
        with unit_of_work(self.engine) as session:
            changed = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == attempt.message_id,
                    OutboundMessage.attempt_key == attempt.key,
                    # `cancelled`: a withdrawal raced the send; the message went all the same.
                    col(OutboundMessage.status).in_(("sending", "pending", "cancelled")),
                )
                .values(
                    status=status,
                    provider_message_id=result.provider_message_id[:64],
                    sent_at=sent_at,
                    status_updated_at=self.now,
                    lease_owner="",
                    lease_expires_at=None,
                    last_error="",
                )
            )
            if changed.rowcount != 1:
                log.error(
                    "message %s went out as %s but its row moved on (attempt %s); check for a "
                    "duplicate",
                    attempt.message_id,
                    result.provider_message_id,
                    attempt.key,
                )
                return False
            message = session.get(OutboundMessage, attempt.message_id)
            if message.occasion_id is not None:
                session.execute(
                    update(Occasion)
                    .where(Occasion.id == message.occasion_id, Occasion.status == "scheduled")
                    .values(status="sent")
                )
        return True

    def retry_later(self, attempt: _Attempt, error: str, *, an_attempt: bool = True) -> None:
        """Back to `pending` after a backoff, or `failed` after the last attempt; key kept."""
        with unit_of_work(self.engine) as session:
            message = session.get(OutboundMessage, attempt.message_id)
            if message is None or message.attempt_key != attempt.key or message.status != "sending":
                self.report.lost += 1
                return
            message.last_error = error[:500]
            message.lease_owner = ""
            message.lease_expires_at = None
            message.status_updated_at = self.now
            if an_attempt and message.attempts >= self.policy.max_attempts:
                message.status = "failed"
                self.report.failed += 1
            else:
                message.status = "pending"
                message.send_after = self.now + self.policy.backoff(message.attempts)
                self.report.retrying += 1
            session.add(message)

    def fail(self, attempt: _Attempt, error: PermanentSendError) -> None:
        """A refusal that retrying cannot help; mirror a carrier opt-out on the contact point."""
        code = f" ({error.code})" if error.code is not None else ""
        with unit_of_work(self.engine) as session:
            changed = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == attempt.message_id,
                    OutboundMessage.attempt_key == attempt.key,
                    OutboundMessage.status == "sending",
                )
                .values(
                    status="failed",
                    last_error=f"{error}{code}"[:500],
                    status_updated_at=self.now,
                    lease_owner="",
                    lease_expires_at=None,
                )
            )
            if changed.rowcount != 1:
                self.report.lost += 1
                return
            self.report.failed += 1
            if error.opted_out and attempt.channel == "sms":
                message = session.get(OutboundMessage, attempt.message_id)
                opt_out_participant(
                    session,
                    message.participant_id,
                    now=self.now,
                    source=f"provider refused a message: recipient opted out ({error.code})",
                )

    def give_back_after_error(self, message_id: int) -> None:
        """After an unexpected error: count an attempt and retry later, if the row is still ours."""
        try:
            with unit_of_work(self.engine) as session:
                message = session.get(OutboundMessage, message_id)
                if message is None or message.status != "sending":
                    return
                if message.lease_owner != self.owner:
                    return
                message.attempts += 1
                message.status = (
                    "failed" if message.attempts >= self.policy.max_attempts else "pending"
                )
                message.send_after = self.now + self.policy.backoff(message.attempts)
                message.last_error = "dispatcher error; see the scheduler log"
                message.lease_owner = ""
                message.lease_expires_at = None
                session.add(message)
                counter = "failed" if message.status == "failed" else "retrying"
            setattr(self.report, counter, getattr(self.report, counter) + 1)
        except Exception:
            log.exception("could not give message %s back; its lease will expire", message_id)


def status_callback_url(settings: Settings, attempt: _Attempt) -> str | None:
    """Where the provider reports delivery. The attempt key lets the webhook match a callback
    that arrives before the provider id is recorded."""
    if attempt.channel != "sms":
        return None
    return f"{settings.public_url}{STATUS_CALLBACK_PATH}?attempt={attempt.key}"


# --- rate budget ----------------------------------------------------------------------------------


def take_send_token(
    session: Session, channel: str, *, now: datetime, rate: float, burst: float
) -> bool:
    """Take one token from `channel`'s bucket if there is one (refilled at `rate` per second up
    to `burst`); inside the caller's transaction, holding the bucket's row until commit."""
    table = SendBudget.__table__
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(session.get_bind().dialect.name)
    if dialect is not None:
        session.execute(
            dialect.insert(table)
            .values(channel=channel, tokens=burst, refilled_at=now)
            .on_conflict_do_nothing(index_elements=[table.c.channel])
        )
    elif session.get(SendBudget, channel) is None:
        session.execute(table.insert().values(channel=channel, tokens=burst, refilled_at=now))
    row = session.execute(
        select(table.c.tokens, table.c.refilled_at)
        .where(table.c.channel == channel)
        .with_for_update()
    ).one()
    refilled_at = row.refilled_at
    elapsed = max(0.0, (now - refilled_at).total_seconds())
    tokens = min(burst, row.tokens + elapsed * rate)
    taken = tokens >= 1.0
    session.execute(
        update(table)
        .where(table.c.channel == channel)
        .values(tokens=tokens - 1.0 if taken else tokens, refilled_at=max(refilled_at, now))
    )
    return taken


# --- quiet hours ----------------------------------------------------------------------------------


def end_of_quiet_hours(protocol: Protocol, timezone: str, now: datetime) -> datetime | None:
    """When the protocol's quiet hours end for someone in `timezone`, if `now` falls in them
    (the planner's rules for local time, DST included: `study.schedule.localtime`)."""
    later = out_of_quiet_hours(now, protocol.model.channels.quiet_hours, zone(timezone))
    return later if later != now else None


# --- the tick task --------------------------------------------------------------------------------


def dispatch_task(settings: Settings, *, channels: Mapping[str, object] | None = None):
    """The `dispatch` tick task: channels built once, `dispatch_due` with the ticker's `now`."""
    from study.scheduler import TickTask

    built = channels if channels is not None else build_channels(settings)
    policy = DispatchPolicy.from_settings(settings)

    def run(engine: Engine, now: datetime) -> None:
        dispatch_due(
            engine,
            built,
            settings,
            now=now,
            owner=dispatcher_owner(),
            policy=policy,
        )

    return TickTask("dispatch", run)
