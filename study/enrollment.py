"""The participant journey as plain functions: screen, consent, baseline, contacts, enroll.

The web blueprint (`study.web.participate`) is a thin layer over these; tests drive them
directly. Each step checks that the steps it depends on are done (`Journey.next_step`), writes
in the caller's transaction and audits the change as `participant:<code>`.

Privacy by construction:
* People who are not eligible leave nothing behind but an audit event without answers
  (`screening.ineligible`), so `ineligible_count` is all that is known about them.
* A participant row, with a random pseudonymous code, exists only once screening is passed.
* Contact details go through the PII vault into `ContactPoint`, never into the audit log.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

import consent

from . import audit, randomization, schedule
from .models import (
    Allocation,
    Arm,
    AuditEvent,
    Consent,
    ContactPoint,
    EnrollmentProgress,
    Invitation,
    Participant,
    ProtocolVersion,
    Study,
)
from .pii import PiiError, PiiVault, normalise_contact
from .protocol import Protocol
from .protocol.registry import current_version, parsed_version
from .protocol.schema import EligibilityQuestion

# No 0/O, 1/I/L: codes are read out on the phone and typed from paper.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
CHANNEL_CHOICES = ("sms", "email", "both")
MAX_NAME_LENGTH = 200


class StudyUnavailable(LookupError):
    """No study with this link, or it is not recruiting (the message can be shown as it is)."""


class StepRefused(RuntimeError):
    """A step was attempted before the ones it needs; `step` is where the participant belongs."""

    def __init__(self, step: str, message: str = "") -> None:
        self.step = step
        super().__init__(message or f"complete the '{step}' step first")


class InvitationInvalid(ValueError):
    """The invitation code is unknown, already used, or for another study."""


# --- loading a study and a participant's journey ------------------------------------------------


@dataclass
class OpenStudy:
    """A recruiting study with the protocol version in force."""

    study: Study
    version: ProtocolVersion
    protocol: Protocol


def open_study(session: Session, slug: str) -> OpenStudy:
    """The study behind a study link; StudyUnavailable if unknown or not recruiting."""
    study = session.exec(select(Study).where(Study.slug == slug)).first()
    if study is None:
        raise StudyUnavailable("There is no study at this address. Please check the link.")
    version = current_version(session, study.id)
    if version is None or study.status != "recruiting":
        raise StudyUnavailable("This study is not taking new participants at the moment.")
    return OpenStudy(study, version, parsed_version(version))


STEPS = ("consent", "sign", "baseline", "contacts", "preferences", "enroll", "enrolled")


@dataclass
class Journey:
    """One participant's progress, with the protocol in force for their study."""

    participant: Participant
    progress: EnrollmentProgress
    opened: OpenStudy
    active_consent: Consent | None = None

    @property
    def protocol(self) -> Protocol:
        return self.opened.protocol

    @property
    def actor(self) -> str:
        return f"participant:{self.participant.code}"

    def next_step(self) -> str:
        """The first step not yet done; `withdrawn` or `enrolled` when the journey is over."""
        status = self.participant.status
        if status == "withdrawn":
            return "withdrawn"
        if status in ("enrolled", "completed"):
            return "enrolled"
        if self.protocol.model.consent.comprehension and not self.progress.comprehension_passed_at:
            return "consent"
        if not self.consent_is_current:
            return "sign"
        if baseline_instrument_ids(self.protocol) and self.progress.baseline_at is None:
            return "baseline"
        if self.progress.contacts_at is None:
            return "contacts"
        if self.progress.preferences_at is None:
            return "preferences"
        return "enroll"

    @property
    def consent_is_current(self) -> bool:
        """Signed, and of the consent version in force (an amendment asks for a new signature)."""
        return (
            self.active_consent is not None
            and self.active_consent.document_version == self.protocol.model.consent.version
        )

    def require(self, step: str) -> None:
        """StepRefused unless every step before `step` is done (later ones may be redone)."""
        current = self.next_step()
        if current in ("withdrawn", "enrolled"):
            raise StepRefused(current, f"the journey is over ({current})")
        if STEPS.index(current) < STEPS.index(step):
            raise StepRefused(current)


def load_journey(session: Session, code: str, slug: str | None = None) -> Journey | None:
    """The journey of the participant with `code` (in study `slug`, if given); None if unknown."""
    participant = session.exec(select(Participant).where(Participant.code == code)).first()
    if participant is None:
        return None
    study = session.get(Study, participant.study_id)
    if study is None or (slug is not None and study.slug != slug):
        return None
    progress = session.exec(
        select(EnrollmentProgress).where(EnrollmentProgress.participant_id == participant.id)
    ).first()
    if progress is None:
        return None
    # Amendments apply to everyone taking part: the version in force decides what they are
    # shown and whether they must re-consent; `protocol_version_id` keeps the one they joined.
    version = current_version(session, study.id)
    if version is None:
        return None
    return Journey(
        participant,
        progress,
        OpenStudy(study, version, parsed_version(version)),
        active_consent(session, participant),
    )


def active_consent(session: Session, participant: Participant) -> Consent | None:
    """The participant's signed consent in force: neither superseded nor withdrawn."""
    return session.exec(
        select(Consent)
        .where(
            Consent.participant_id == participant.id,
            col(Consent.superseded_at).is_(None),
            col(Consent.withdrawn_at).is_(None),
        )
        .order_by(col(Consent.signed_at).desc())
    ).first()


# --- screening ----------------------------------------------------------------------------------


@dataclass
class ScreeningOutcome:
    """`problems` (question id -> message) means the form must be corrected; nothing was stored.

    Otherwise `eligible` says which way it went; `journey` is the new participant's if eligible.
    """

    answers: dict[str, object] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    eligible: bool = False
    journey: Journey | None = None


def parse_screening(protocol: Protocol, form: Mapping[str, str]) -> ScreeningOutcome:
    """Read raw form values into typed answers (yes_no -> bool, number -> int/float)."""
    outcome = ScreeningOutcome()
    for question in protocol.model.eligibility.questions:
        raw = (form.get(question.id) or "").strip()
        if not raw:
            outcome.problems[question.id] = (
                "Enter a number." if question.type == "number" else "Choose an answer."
            )
            continue
        value, problem = _parse_answer(question, raw)
        if problem:
            outcome.problems[question.id] = problem
        else:
            outcome.answers[question.id] = value
    return outcome


def _parse_answer(question: EligibilityQuestion, raw: str) -> tuple[object, str]:
    if question.type == "yes_no":
        if raw in ("yes", "no"):
            return raw == "yes", ""
        return None, "Choose yes or no."
    if question.type == "choice":
        values = [option.value for option in question.options]
        if raw in values:
            return raw, ""
        return None, "Choose one of the answers."
    try:
        number = float(raw.replace(",", "."))
    except ValueError:
        return None, "Enter a number using digits, for example 34."
    if not math.isfinite(number) or abs(number) > 1_000_000:
        return None, "Enter a number using digits, for example 34."
    return (int(number) if number.is_integer() else number), ""


def is_eligible(protocol: Protocol, answers: Mapping[str, object]) -> bool:
    """Whether every answer meets its question's `eligible_if` rule."""
    for question in protocol.model.eligibility.questions:
        rule = question.eligible_if
        value = answers.get(question.id)
        if rule is None:
            continue
        if value is None:
            return False
        if rule.min is not None and value < rule.min:
            return False
        if rule.max is not None and value > rule.max:
            return False
        if rule.equals is not None and value != rule.equals:
            return False
        if rule.in_ is not None and value not in rule.in_:
            return False
    return True


def screen(
    session: Session,
    opened: OpenStudy,
    form: Mapping[str, str],
    *,
    now: datetime,
    language: str | None = None,
    invitation: Invitation | None = None,
) -> ScreeningOutcome:
    """Screen one person. Eligible: create the participant and their journey. Not eligible:
    record only that it happened (an audit event without answers) and keep nothing else."""
    outcome = parse_screening(opened.protocol, form)
    if outcome.problems:
        return outcome
    outcome.eligible = is_eligible(opened.protocol, outcome.answers)
    if invitation is not None:
        invitation.used_at = now
        session.add(invitation)
    if not outcome.eligible:
        audit.record(
            session,
            "anonymous",
            "screening.ineligible",
            entity_type="study",
            entity_id=opened.study.id,
            at=now,
        )
        outcome.answers = {}
        return outcome

    spec = opened.protocol.model.study
    participant = Participant(
        study_id=opened.study.id,
        code=new_participant_code(session),
        status="screening",
        protocol_version_id=opened.version.id,
        language=language if language in spec.languages else spec.default_language,
        preferred_channel=opened.protocol.model.channels.default,
        created_at=now,
    )
    session.add(participant)
    session.flush()
    progress = EnrollmentProgress(
        participant_id=participant.id, screening_answers=dict(outcome.answers), screened_at=now
    )
    session.add(progress)
    if invitation is not None:
        invitation.participant_id = participant.id
    session.flush()
    audit.record(
        session,
        f"participant:{participant.code}",
        "participant.screened_eligible",
        entity_type="participant",
        entity_id=participant.id,
        after={"code": participant.code, "status": participant.status},
        details={"study": opened.study.slug, "invited": invitation is not None},
        at=now,
    )
    outcome.journey = Journey(participant, progress, opened)
    return outcome


def new_participant_code(session: Session) -> str:
    """A fresh `P-XXXXXXXX` code: random (it reveals nothing about order) and unique."""
    while True:
        code = "P-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if session.exec(select(Participant.id).where(Participant.code == code)).first() is None:
            return code


def ineligible_count(session: Session, study: Study) -> int:
    """How many people were screened out: the only thing kept about them."""
    return session.exec(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == "screening.ineligible",
            AuditEvent.entity_type == "study",
            AuditEvent.entity_id == str(study.id),
        )
    ).one()


# --- invitation codes ---------------------------------------------------------------------------


def issue_invitations(session: Session, study: Study, count: int, *, actor: str, label: str = ""):
    """Create `count` single-use invitation codes (20 characters, ~99 bits); return them once.

    Only a SHA-256 of each code is stored, so a copy of the database yields no usable code (the
    codes are far too random to be recovered from their hash by trying).
    """
    codes = []
    for _ in range(count):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(20))
        session.add(
            Invitation(
                study_id=study.id,
                code_hash=invitation_hash(code),
                label=label[:200],
                created_by=actor[:200],
            )
        )
        codes.append(code)
    session.flush()
    audit.record(
        session,
        actor,
        "invitation.issue",
        entity_type="study",
        entity_id=study.id,
        details={"count": count, "label": label},
    )
    return codes


def invitation_hash(code: str) -> str:
    """SHA-256 of the code as typed, ignoring case, spaces and hyphens."""
    normalised = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()


def find_invitation(session: Session, study: Study, code: str) -> Invitation:
    """The unused invitation with `code` for `study`; InvitationInvalid otherwise."""
    digest = invitation_hash(code)
    invitation = session.exec(
        select(Invitation).where(Invitation.code_hash == digest).with_for_update()
    ).first()
    if invitation is None or invitation.study_id != study.id or invitation.used_at is not None:
        raise InvitationInvalid(
            "This invitation code is not valid or has already been used. Please check the link "
            "in your invitation, or contact the study team."
        )
    return invitation


# --- consent ------------------------------------------------------------------------------------


def check_comprehension(
    session: Session, journey: Journey, answers: Mapping[str, str], *, now: datetime
) -> list[str]:
    """Mark the comprehension questions; returns the ids answered wrongly (or not at all).

    Every attempt is counted and audited; passing unlocks the signature.
    """
    journey.require("consent")
    wrong = consent.check_comprehension(journey.protocol, dict(answers))
    progress = journey.progress
    before = _progress_state(progress)
    progress.comprehension_attempts += 1
    if not wrong:
        progress.comprehension_passed_at = now
    session.add(progress)
    audit.record(
        session,
        journey.actor,
        "enrollment.comprehension",
        entity_type="participant",
        entity_id=journey.participant.id,
        before=before,
        after=_progress_state(progress),
        details={"attempt": progress.comprehension_attempts, "wrong": sorted(wrong)},
        at=now,
    )
    return list(wrong)


def consent_options(protocol: Protocol, form: Mapping[str, object]) -> dict[str, bool]:
    """The optional consent items as ticked (anything not ticked is a no)."""
    return {item.id: bool(form.get(item.id)) for item in protocol.model.consent.optional_items}


def record_consent(
    session: Session,
    vault: PiiVault,
    journey: Journey,
    *,
    signed_name: str,
    options: Mapping[str, bool],
    now: datetime,
) -> Consent:
    """Sign the consent document with a typed name; ValueError if the name is missing."""
    journey.require("sign")
    name = " ".join(signed_name.split())
    if not name:
        raise ValueError("Type your full name to sign.")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"Your name can be at most {MAX_NAME_LENGTH} characters long.")
    participant = journey.participant
    signed = consent.sign(
        session,
        vault,
        participant=participant,
        protocol=journey.protocol,
        signed_name=name,
        options=dict(options),
        now=now,
        actor=journey.actor,
    )
    if participant.status == "screening":
        participant.status = "consented"
        session.add(participant)
    session.flush()
    journey.active_consent = signed
    return signed


def reconsent(
    session: Session,
    vault: PiiVault,
    journey: Journey,
    *,
    signed_name: str,
    options: Mapping[str, bool],
    now: datetime,
) -> Consent:
    """Sign the amended consent document (the earlier consent is superseded, not lost)."""
    if not consent.needs_reconsent(session, journey.participant, journey.protocol):
        raise StepRefused("enrolled", "there is no new consent document to sign")
    signed = consent.sign(
        session,
        vault,
        participant=journey.participant,
        protocol=journey.protocol,
        signed_name=signed_name,
        options=dict(options),
        now=now,
        actor=journey.actor,
    )
    journey.active_consent = signed
    return signed


# --- baseline stratification measures -----------------------------------------------------------


def baseline_instrument_ids(protocol: Protocol) -> list[str]:
    """Instruments whose scores stratify the allocation, so must be answered before it."""
    ids: list[str] = []
    for factor in protocol.model.allocation.strata:
        if factor.instrument and factor.instrument not in ids:
            ids.append(factor.instrument)
    return ids


def load_instrument(protocol: Protocol, instrument_id: str):
    """The definition the protocol uses (its study file or the library's), wording merged."""
    return protocol.instrument(instrument_id)


def record_baseline(
    session: Session,
    journey: Journey,
    instrument,
    form: Mapping[str, str],
    *,
    now: datetime,
) -> dict[str, str]:
    """Score and keep one stratification instrument; returns item id -> problem (empty if kept).

    Every item must be answered: a missing score would leave the participant without a stratum.
    """
    from instruments.scoring import score_response, validate_answers

    journey.require("baseline")
    answers = {item.id: (form.get(item.id) or "").strip() for item in instrument.items}
    problems = {item_id: "Choose an answer." for item_id, value in answers.items() if not value}
    given = {item_id: value for item_id, value in answers.items() if value}
    for problem in validate_answers(instrument, given):
        problems[problem.item] = "Choose one of the answers shown."
    if problems:
        return problems
    result = score_response(instrument, answers)
    progress = journey.progress
    before = _progress_state(progress)
    progress.baseline = {
        **progress.baseline,
        instrument.id: {
            "version": instrument.version,
            "language": journey.participant.language,
            "answers": {key: float(value) for key, value in answers.items()},
            "scores": result.scores,
            "consent_version": journey.protocol.model.consent.version,
            "answered_at": now.isoformat(),
        },
    }
    if all(iid in progress.baseline for iid in baseline_instrument_ids(journey.protocol)):
        progress.baseline_at = now
    session.add(progress)
    audit.record(
        session,
        journey.actor,
        "enrollment.baseline",
        entity_type="participant",
        entity_id=journey.participant.id,
        before=before,
        after=_progress_state(progress),
        details={"instrument": instrument.id, "version": instrument.version},
        at=now,
    )
    return {}


def baseline_scores(progress: EnrollmentProgress) -> dict[tuple[str, str], float]:
    """The stratification scores as `(instrument_id, score_id) -> value`."""
    return {
        (instrument_id, score_id): value
        for instrument_id, record in progress.baseline.items()
        for score_id, value in record.get("scores", {}).items()
        if value is not None
    }


# --- contact details and preferences ------------------------------------------------------------


def channel_choices(protocol: Protocol) -> list[str]:
    """The preferred-channel choices the protocol allows: sms, email and both if both are."""
    allowed = set(protocol.model.channels.allowed)
    choices = [kind for kind in ("sms", "email") if kind in allowed]
    if len(choices) == 2:
        choices.append("both")
    return choices


def record_contacts(
    session: Session,
    vault: PiiVault,
    journey: Journey,
    *,
    channel: str,
    phone: str,
    email: str,
    now: datetime,
) -> dict[str, str]:
    """Keep the preferred channel and the contact details it needs, encrypted.

    Returns field -> problem (`channel`, `phone`, `email`); nothing is stored unless it is empty.
    A detail not needed by the channel is still kept if given (e.g. email for a copy of forms).
    """
    journey.require("contacts")
    problems: dict[str, str] = {}
    if channel not in channel_choices(journey.protocol):
        problems["channel"] = "Choose how we should contact you."
    wanted = {"sms": phone.strip(), "email": email.strip()}
    needs = {"sms": ("sms",), "email": ("email",), "both": ("sms", "email")}.get(channel, ())
    messages = {
        "sms": "Enter your mobile number in international form, starting with + and your "
        "country code, for example +44 7700 900123.",
        "email": "Enter your email address, for example name@example.com.",
    }
    normalised: dict[str, str] = {}
    for kind, value in wanted.items():
        field_name = "phone" if kind == "sms" else "email"
        if not value:
            if kind in needs:
                problems[field_name] = messages[kind]
            continue
        try:
            normalised[kind] = normalise_contact(kind, value)
        except PiiError:
            problems[field_name] = messages[kind]
    if problems:
        return problems

    participant = journey.participant
    existing = {
        point.kind: point
        for point in session.exec(
            select(ContactPoint).where(ContactPoint.participant_id == participant.id)
        )
    }
    for kind, point in existing.items():
        if kind not in normalised:
            session.delete(point)
    for kind, value in normalised.items():
        point = existing.get(kind) or ContactPoint(
            participant_id=participant.id, kind=kind, value_encrypted=b"", lookup_hash=""
        )
        point.value_encrypted = vault.encrypt(value)
        point.lookup_hash = vault.lookup_hash(kind, value)
        point.created_at = now
        point.verified_at = None
        session.add(point)
    before = {
        "preferred_channel": participant.preferred_channel,
        **_progress_state(journey.progress),
    }
    participant.preferred_channel = channel
    journey.progress.contacts_at = now
    session.add(participant)
    session.add(journey.progress)
    session.flush()
    audit.record(
        session,
        journey.actor,
        "enrollment.contacts",
        entity_type="participant",
        entity_id=participant.id,
        before=before,
        after={"channel": channel, **_progress_state(journey.progress)},
        # Which kinds, never the values: the audit log must not become a copy of personal data.
        details={"channel": channel, "kinds": sorted(normalised)},
        at=now,
    )
    return {}


def valid_timezone(name: str) -> bool:
    """Whether `name` is an IANA time zone known to this server's zoneinfo database."""
    if not name or name not in zoneinfo.available_timezones():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def record_preferences(
    session: Session, journey: Journey, *, timezone: str, language: str, now: datetime
) -> dict[str, str]:
    """Keep the confirmed IANA time zone and language; returns field -> problem."""
    journey.require("preferences")
    problems = {}
    if not valid_timezone(timezone):
        problems["timezone"] = "Choose your time zone from the list, for example Europe/London."
    if language not in journey.protocol.model.study.languages:
        problems["language"] = "Choose one of the languages offered."
    if problems:
        return problems
    participant = journey.participant
    before = {"timezone": participant.timezone, "language": participant.language}
    participant.timezone = timezone
    participant.language = language
    journey.progress.preferences_at = now
    session.add(participant)
    session.add(journey.progress)
    audit.record(
        session,
        journey.actor,
        "enrollment.preferences",
        entity_type="participant",
        entity_id=participant.id,
        before=before,
        after={"timezone": timezone, "language": language},
        at=now,
    )
    return {}


# --- enrollment and allocation ------------------------------------------------------------------


def enroll(
    session: Session,
    journey: Journey,
    *,
    now: datetime,
    environ: Mapping[str, str],
    secret_key: str | None = None,
) -> Allocation:
    """Enroll the participant and allocate them, exactly once.

    Called again (a double submit, a refresh) it returns the allocation already made. Two
    concurrent calls cannot both allocate: the participant row is locked on PostgreSQL, and the
    allocation's unique participant_id refuses a second one on any engine. `environ` and
    `secret_key` locate the secret allocation seed (`randomization.allocation_seed`); the
    secret key also seeds the participant's schedule, planned here (`schedule.materialise`).
    """
    participant = journey.participant
    if session.get_bind().dialect.name == "postgresql":
        session.refresh(participant, with_for_update=True)
    existing = allocation_of(session, participant)
    if existing is not None:
        return existing
    journey.require("enroll")
    protocol = journey.protocol
    if consent.needs_reconsent(session, participant, protocol):
        raise StepRefused("sign", "the consent document has changed: please read and sign it")
    answers = journey.progress.screening_answers
    strata = randomization.stratum_levels(
        protocol, answers=answers, scores=baseline_scores(journey.progress)
    )
    preference = None
    design = protocol.model.allocation.preference_arm
    if design is not None:
        preference = str(answers.get(design.question, "")) or None
    before = _participant_state(participant)
    participant.status = "enrolled"
    participant.enrolled_at = now
    participant.protocol_version_id = journey.opened.version.id
    participant.strata = dict(strata)
    session.add(participant)
    session.flush()
    allocation = randomization.allocate(
        session,
        participant=participant,
        protocol=protocol,
        strata=dict(strata),
        seed=randomization.allocation_seed(protocol, environ, secret_key=secret_key),
        actor=journey.actor,
        preference=preference,
        now=now,
    )
    audit.record(
        session,
        journey.actor,
        "participant.enroll",
        entity_type="participant",
        entity_id=participant.id,
        before=before,
        after=_participant_state(participant),
        details={"protocol_version": journey.opened.version.number},
        at=now,
    )
    # The schedule is planned in the same transaction as the allocation, so an enrolled
    # participant always has one; a second call returned above and plans nothing again.
    schedule.materialise(
        session,
        participant,
        protocol,
        journey.opened.version.id,
        now=now,
        seed=schedule.schedule_seed(
            secret_key or environ.get("FLOURISH_SECRET_KEY", ""), journey.opened.study.slug
        ),
        actor=journey.actor,
    )
    return allocation


def allocation_of(session: Session, participant: Participant) -> Allocation | None:
    return session.exec(
        select(Allocation).where(Allocation.participant_id == participant.id)
    ).first()


def arm_of(session: Session, participant: Participant) -> Arm | None:
    """The participant's own arm (never anything about anyone else's)."""
    allocation = allocation_of(session, participant)
    return None if allocation is None else session.get(Arm, allocation.arm_id)


def withdraw(session: Session, journey: Journey, *, now: datetime, reason: str = ""):
    """The participant withdraws: every pending message and occasion is cancelled at once."""
    return consent.withdraw(
        session,
        participant=journey.participant,
        protocol=journey.protocol,
        now=now,
        actor=journey.actor,
        reason=reason.strip()[:500],
        by="participant",
    )


# --- what happens next, in plain language -------------------------------------------------------

_UNIT_WORDS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
_CHANNEL_WORDS = {
    "sms": "by text message",
    "email": "by email",
    "both": "by text message and email",
}


def _span(duration) -> str:
    word = _UNIT_WORDS[duration.unit]
    return f"1 {word}" if duration.amount == 1 else f"{duration.amount} {word}s"


def _every(duration) -> str:
    if duration.unit == "d" and duration.amount == 7:
        return "every week"
    if duration.amount == 1:
        return f"every {_UNIT_WORDS[duration.unit]}"
    return f"every {_span(duration)}"


def schedule_summary(protocol: Protocol, channel: str = "") -> list[str]:
    """The protocol's schedule as sentences a participant can read on their phone."""
    lines = []
    for entry in protocol.model.schedule.values():
        count = len(entry.instruments)
        what = "a questionnaire" if count == 1 else f"{count} short questionnaires"
        if entry.kind == "baseline":
            line = f"Straight after you join: {what}"
            line += f", open for {_span(entry.window)}." if entry.window else "."
        elif entry.kind == "wave":
            line = f"{_every(entry.every).capitalize()}, starting {_span(entry.first_offset)} "
            line += "after you join"
            if entry.count:
                line += f", {entry.count} times"
            elif entry.until:
                line += f", until {_span(entry.until)} after you join"
            line += f": {what} at {entry.local_time:%H:%M} your time; you have "
            line += f"{_span(entry.window)} to answer."
        elif entry.kind == "followup":
            line = f"{_span(entry.at).capitalize()} after you join: {what} at "
            line += f"{entry.local_time:%H:%M} your time; you have {_span(entry.window)} to answer."
        else:
            start, end = entry.daily_window
            line = "If you agree: " if entry.opt_in else ""
            line += f"{entry.per_day} very short check-ins a day for {entry.days} days, between "
            line += f"{start:%H:%M} and {end:%H:%M} your time."
            line = line[0].upper() + line[1:]
        lines.append(line)
    if channel in _CHANNEL_WORDS:
        lines.append(f"We will send you each invitation {_CHANNEL_WORDS[channel]}.")
    quiet = protocol.model.channels.quiet_hours
    if quiet is not None:
        lines.append(
            f"We never send messages between {quiet.start:%H:%M} and {quiet.end:%H:%M} your time."
        )
    return lines


def _progress_state(progress: EnrollmentProgress) -> dict:
    return {
        "comprehension_attempts": progress.comprehension_attempts,
        "comprehension_passed": progress.comprehension_passed_at is not None,
        "baseline": sorted(progress.baseline),
        "contacts": progress.contacts_at is not None,
        "preferences": progress.preferences_at is not None,
    }


def _participant_state(participant: Participant) -> dict:
    return {
        "code": participant.code,
        "status": participant.status,
        "protocol_version_id": participant.protocol_version_id,
        "strata": participant.strata,
        "enrolled_at": participant.enrolled_at,
    }
