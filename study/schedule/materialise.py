"""Writing a participant's plan: occasions and their pending invitations and reminders.

`materialise` writes the occasions due within the rolling horizon (`DEFAULT_HORIZON`, 14 days)
that are not written yet; `study.schedule.horizon.extend_horizon` keeps topping that up as time
passes, so the tables hold the past and the next two weeks, never six months of prompts ahead.
`replan` re-plans the future after a change of time zone or a protocol amendment;
`change_time_zone` is the one way people (participant portal, coordinator page, CLI) move a
participant to another zone.

Never twice. There is no unique constraint on occasions (models are not ours to change), so
every writer first takes a per-participant lock (`lock_participant`: the participant row `FOR
UPDATE` on PostgreSQL; SQLite has a single writer, taken at once by a no-op write) and then
checks what exists. An occasion is identified by `(participant, schedule_key, wave)`:

* a candidate is skipped if an occasion with the same key and wave exists that is not
  cancelled: sent, past or still to come, in whatever zone or version it was planned;
* when topping up, also if one with the same key, wave *and due instant* was cancelled: someone
  meant it (a coordinator, the dispatcher after an opt-out), and topping up must not undo that.

Every occasion gets one invitation per channel (`sms`, `email`, or both for `both`) and one
reminder per planned reminder instant, `pending`, with an empty body that the dispatcher
renders at send time, `send_after` its instant and `expires_at` the window's close.
"""

from __future__ import annotations

import hashlib
import hmac
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, text, update
from sqlmodel import Session, col, select

from study import audit
from study.models import Consent, Occasion, OutboundMessage, Participant, Study
from study.protocol.registry import current_version, load_version
from study.protocol.schema import EmaEntry

from .planning import PlannedOccasion, plan_occasions

DEFAULT_HORIZON = timedelta(days=14)
SYSTEM_ACTOR = "system:scheduler"
# The optional consent item that opts a participant in to every `opt_in` EMA entry; an item
# named after one entry's key opts in to that entry's prompts.
EMA_CONSENT_ITEM = "ema"
MESSAGE_CHANNELS = {"sms": ("sms",), "email": ("email",), "both": ("sms", "email")}
UNSENT_MESSAGE = ("pending", "cancelled")
# A zone can be changed before enrollment (it is planned in at enrollment) and while enrolled
# (the future is re-planned); after withdrawal or completion there is nothing left to move.
ZONE_CHANGEABLE = ("screening", "consented", "enrolled")


class ScheduleError(RuntimeError):
    """The participant cannot be planned for (not enrolled, no enrollment instant)."""


@dataclass
class Written:
    """What one write did: the new occasions and how many messages they got."""

    occasions: list[Occasion] = field(default_factory=list)
    messages: int = 0


@dataclass
class ReplanResult:
    """What `replan` did: future occasions cancelled (with their messages) and those written."""

    cancelled_occasions: int
    cancelled_messages: int
    occasions: list[Occasion]
    messages: int


def schedule_seed(secret_key: str, study_slug: str) -> str:
    """The study's schedule seed: HMAC-SHA256 of the slug under the instance's secret key.

    Reproducible for whoever holds the key, unpredictable to everyone else (participants cannot
    work out when their prompts will come). Without a key (tools, tests) it is the slug's plain
    SHA-256: still reproducible, not concealed.
    """
    message = f"schedule-seed:{study_slug}".encode()
    if not secret_key:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def participant_seed(seed: str, participant: Participant) -> str:
    """The seed of one participant's plan: the study's seed and their code."""
    return f"{seed}:{participant.code}"


def message_channels(participant: Participant) -> tuple[str, ...]:
    """The channels invitations go out on; none for a participant who asked for none (web)."""
    return MESSAGE_CHANNELS.get(participant.preferred_channel, ())


def ema_opted_in(session: Session, participant: Participant, protocol) -> bool:
    """Whether the participant's consent in force says yes to `ema` or an opt-in EMA entry."""
    model = getattr(protocol, "model", protocol)
    items = {EMA_CONSENT_ITEM} | {
        key for key, entry in model.schedule.items() if isinstance(entry, EmaEntry) and entry.opt_in
    }
    options = session.exec(
        select(Consent.options)
        .where(
            Consent.participant_id == participant.id,
            col(Consent.superseded_at).is_(None),
            col(Consent.withdrawn_at).is_(None),
        )
        .order_by(col(Consent.signed_at).desc())
    ).first()
    return any((options or {}).get(item) is True for item in items)


def lock_participant(session: Session, participant_id: int) -> None:
    """Serialise planning for one participant until the transaction ends (see module docs)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT id FROM participant WHERE id = :id FOR UPDATE"), {"id": participant_id}
        )
    else:
        # SQLite: the first write takes the database's write lock (waiting for another writer);
        # reads after it see everything committed before.
        session.execute(
            text("UPDATE participant SET id = id WHERE id = :id"), {"id": participant_id}
        )


def _lock_enrolled(session: Session, participant: Participant) -> None:
    """Take the participant's lock, then make sure they are (still) enrolled."""
    lock_participant(session, participant.id)
    status = session.exec(select(Participant.status).where(Participant.id == participant.id)).one()
    if status != "enrolled" or participant.enrolled_at is None:
        raise ScheduleError(
            f"participant {participant.code} is {status}, not enrolled: there is nothing to plan"
        )


def materialise(
    session: Session,
    participant: Participant,
    protocol,
    protocol_version_id: int,
    *,
    now: datetime,
    seed: str,
    horizon: timedelta = DEFAULT_HORIZON,
    ema_opt_in: bool | None = None,
    actor: str = SYSTEM_ACTOR,
) -> list[Occasion]:
    """Write the participant's occasions due before `now + horizon` not written yet; audited.

    Runs in the caller's transaction (at enrollment, the one that allocates). Calling it again
    writes nothing new. `seed` is the study's (`schedule_seed`); `ema_opt_in` defaults to what
    the participant's consent says (`ema_opted_in`). Returns the occasions written.
    """
    _lock_enrolled(session, participant)
    if ema_opt_in is None:
        ema_opt_in = ema_opted_in(session, participant, protocol)
    planned = plan_for(
        participant, protocol, seed=seed, since=now, until=now + horizon, ema_opt_in=ema_opt_in
    )
    written = write_missing(session, participant, planned, protocol_version_id, now=now)
    if written.occasions:
        audit.record(
            session,
            actor,
            "schedule.plan",
            entity_type="participant",
            entity_id=participant.id,
            details={
                "participant": participant.code,
                "protocol_version_id": protocol_version_id,
                "occasions": len(written.occasions),
                "messages": written.messages,
                "through": (now + horizon).isoformat(),
            },
            at=now,
        )
    return written.occasions


def replan(
    session: Session,
    participant: Participant,
    protocol,
    protocol_version_id: int,
    *,
    now: datetime,
    seed: str,
    horizon: timedelta = DEFAULT_HORIZON,
    ema_opt_in: bool | None = None,
    actor: str = SYSTEM_ACTOR,
    reason: str = "",
) -> ReplanResult:
    """Re-plan the participant's future under their current zone and `protocol`; audited.

    Only occasions still to come and untouched are replaced: status `scheduled`, due after
    `now`, no message of theirs beyond `pending`. They and their pending messages are cancelled
    and the plan is written again up to `now + horizon`. Anything sent, opened, answered or
    past stays as it is, and a wave that already happened is not planned again.
    """
    _lock_enrolled(session, participant)
    if ema_opt_in is None:
        ema_opt_in = ema_opted_in(session, participant, protocol)
    future = _replaceable(session, participant, now)
    cancelled_messages = 0
    if future:
        cancelled_messages = (
            session.execute(
                update(OutboundMessage)
                .where(
                    col(OutboundMessage.occasion_id).in_(future),
                    OutboundMessage.status == "pending",
                )
                .values(status="cancelled", status_updated_at=now)
            ).rowcount
            or 0
        )
        session.execute(
            update(Occasion).where(col(Occasion.id).in_(future)).values(status="cancelled")
        )
    planned = plan_for(
        participant, protocol, seed=seed, since=now, until=now + horizon, ema_opt_in=ema_opt_in
    )
    written = write_missing(
        session, participant, planned, protocol_version_id, now=now, honour_cancelled=False
    )
    audit.record(
        session,
        actor,
        "schedule.replan",
        entity_type="participant",
        entity_id=participant.id,
        details={
            "participant": participant.code,
            "reason": reason,
            "protocol_version_id": protocol_version_id,
            "cancelled_occasions": len(future),
            "cancelled_messages": cancelled_messages,
            "occasions": len(written.occasions),
            "messages": written.messages,
            "through": (now + horizon).isoformat(),
        },
        at=now,
    )
    return ReplanResult(len(future), cancelled_messages, written.occasions, written.messages)


class TimeZoneError(ValueError):
    """A time zone change that cannot be made: unknown zone, or nobody left to plan for."""


@dataclass
class TimeZoneChange:
    """What `change_time_zone` did: the zones before and after, and the re-plan (None when the
    zone did not change or the participant is not enrolled yet)."""

    before: str
    after: str
    replanned: ReplanResult | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def change_time_zone(
    session: Session,
    participant: Participant,
    new_tz: str,
    *,
    now: datetime,
    actor: str,
    secret_key: str,
    horizon: timedelta = DEFAULT_HORIZON,
) -> TimeZoneChange:
    """Move the participant to IANA zone `new_tz` and re-plan their future; audited.

    Raises `TimeZoneError` (nothing changed) for a name the server's zoneinfo does not know or
    a participant who has withdrawn or completed. An enrolled participant's future is re-planned
    under the study's protocol version in force (`replan`, reason `timezone`): occasions
    answered, sent, past or open now stay exactly as they were. Before enrollment only the zone
    changes (enrollment plans in it). The same zone again changes and audits nothing. Runs in
    the caller's transaction; `secret_key` gives the study's schedule seed.
    """
    name = (new_tz or "").strip()
    if name not in zoneinfo.available_timezones():
        raise TimeZoneError(
            f"{new_tz!r} is not a time zone known here: choose one from the list, "
            "for example Europe/London"
        )
    # The lock first: it orders this change with enrollment, top-ups and the dispatcher's
    # withdrawal checks, and audit events are taken after it (see horizon.py).
    lock_participant(session, participant.id)
    session.refresh(participant)
    if participant.status not in ZONE_CHANGEABLE:
        raise TimeZoneError(
            f"participant {participant.code} is {participant.status}: there is no schedule to move"
        )
    change = TimeZoneChange(before=participant.timezone, after=name)
    if not change.changed:
        return change
    participant.timezone = name
    session.add(participant)
    session.flush()
    audit.record(
        session,
        actor,
        "participant.timezone",
        entity_type="participant",
        entity_id=participant.id,
        before={"timezone": change.before},
        after={"timezone": name},
        details={"participant": participant.code},
        at=now,
    )
    if participant.status == "enrolled" and participant.enrolled_at is not None:
        study = session.get(Study, participant.study_id)
        version = current_version(session, participant.study_id)
        if version is None:
            raise ScheduleError(f"study {study.slug} has no protocol version to plan under")
        change.replanned = replan(
            session,
            participant,
            load_version(version),
            version.id,
            now=now,
            seed=schedule_seed(secret_key, study.slug),
            horizon=horizon,
            actor=actor,
            reason="timezone",
        )
    return change


def _replaceable(session: Session, participant: Participant, now: datetime) -> list[int]:
    touched = (
        select(OutboundMessage.occasion_id)
        .where(
            OutboundMessage.participant_id == participant.id,
            col(OutboundMessage.occasion_id).is_not(None),
            col(OutboundMessage.status).not_in(UNSENT_MESSAGE),
        )
        .scalar_subquery()
    )
    return list(
        session.exec(
            select(Occasion.id).where(
                Occasion.participant_id == participant.id,
                Occasion.status == "scheduled",
                Occasion.due_at > now,
                col(Occasion.id).not_in(touched),
            )
        )
    )


def plan_for(
    participant: Participant,
    protocol,
    *,
    seed: str,
    since: datetime | None,
    until: datetime | None,
    ema_opt_in: bool,
) -> list[PlannedOccasion]:
    """`plan_occasions` for a participant: their enrollment instant, zone and seed."""
    return plan_occasions(
        protocol,
        enrolled_at=participant.enrolled_at,
        timezone=participant.timezone,
        seed=participant_seed(seed, participant),
        since=since,
        until=until,
        ema_opt_in=ema_opt_in,
    )


def write_missing(
    session: Session,
    participant: Participant,
    planned: Sequence[PlannedOccasion],
    protocol_version_id: int,
    *,
    now: datetime,
    honour_cancelled: bool = True,
) -> Written:
    """Insert the planned occasions that do not exist yet, with their messages.

    The caller holds `lock_participant`. See the module docstring for what "exists" means.
    """
    if not planned:
        return Written()
    existing = _existing(session, participant.id, planned)
    missing = []
    for occasion in planned:
        rows = existing.get((occasion.schedule_key, occasion.wave), ())
        if any(status != "cancelled" for status, _ in rows):
            continue
        if honour_cancelled and any(due == occasion.due_at for _, due in rows):
            continue
        missing.append(occasion)
    if not missing:
        return Written()
    rows = [
        Occasion(
            participant_id=participant.id,
            protocol_version_id=protocol_version_id,
            schedule_key=occasion.schedule_key,
            wave=occasion.wave,
            kind=occasion.kind,
            instruments=list(occasion.instruments),
            due_at=occasion.due_at,
            closes_at=occasion.closes_at,
            status="scheduled",
        )
        for occasion in missing
    ]
    session.add_all(rows)
    session.flush()
    messages = list(_messages(participant, zip(rows, missing, strict=True), now))
    session.add_all(messages)
    session.flush()
    return Written(rows, len(messages))


def _existing(
    session: Session, participant_id: int, planned: Iterable[PlannedOccasion]
) -> dict[tuple[str, int], list[tuple[str, datetime]]]:
    lowest: dict[str, int] = {}
    for occasion in planned:
        lowest[occasion.schedule_key] = min(
            occasion.wave, lowest.get(occasion.schedule_key, occasion.wave)
        )
    found: dict[tuple[str, int], list[tuple[str, datetime]]] = {}
    statement = select(
        Occasion.schedule_key, Occasion.wave, Occasion.status, Occasion.due_at
    ).where(
        Occasion.participant_id == participant_id,
        or_(
            *(
                and_(Occasion.schedule_key == key, Occasion.wave >= wave)
                for key, wave in lowest.items()
            )
        ),
    )
    for key, wave, status, due_at in session.exec(statement):
        found.setdefault((key, wave), []).append((status, due_at))
    return found


def _messages(participant: Participant, pairs, now: datetime) -> Iterable[OutboundMessage]:
    channels = message_channels(participant)
    for row, occasion in pairs:
        for channel in channels:
            yield OutboundMessage(
                participant_id=participant.id,
                occasion_id=row.id,
                channel=channel,
                purpose="invitation",
                status="pending",
                send_after=occasion.invitation_at,
                expires_at=occasion.closes_at,
                created_at=now,
            )
            for instant in occasion.reminders:
                yield OutboundMessage(
                    participant_id=participant.id,
                    occasion_id=row.id,
                    channel=channel,
                    purpose="reminder",
                    status="pending",
                    send_after=instant,
                    expires_at=occasion.closes_at,
                    created_at=now,
                )
