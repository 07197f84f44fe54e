"""Web surveys: one occasion's questionnaires, page by page, saved as they go, submitted once.

A survey link (`study.schedule.links`) names an occasion. Opening it checks, in this order, that
the occasion exists, that its participant is still taking part, that the window is open (from
`OPENS_EARLY` before `due_at` until `closes_at`) and that a consent is in force; then every
instrument of the occasion is localized into the participant's language (with fallback). An
instrument whose wording is missing refuses the whole survey: half a questionnaire is worse
than none.

    survey = open_survey(session, occasion_id, now=now)       # SurveyUnavailable otherwise
    survey.pages[survey.resume_page() - 1]                      # where to carry on
    outcome = save_page(session, occasion_id, 2, form, now=now) # problems, or saved (+ submitted)

Pages: one per instrument, or parts of at most `ITEMS_PER_PAGE` items for a long instrument.
Each saved page writes that instrument's `Response` (status `partial`, one per instrument per
occasion) and upserts one `ItemResponse` per item; the occasion becomes `partial`. Saving the
last page with every item answered submits: all responses `complete`, the occasion `completed`,
its pending reminders cancelled, `survey.submit` audited (without answer values).

Concurrency: every call starts by taking the occasion's row lock (a no-op UPDATE, as
`study.schedule.materialise.lock_participant` does), so two tabs or a double tap are served one
after the other and the second one finds the occasion completed: one set of rows, the same
thank-you page. The caller commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session, col, select

import consent
from instruments.schema import Instrument
from instruments.scoring import validate_answers
from instruments.translations import (
    LocalizedInstrument,
    LocalizedItem,
    MissingWordingError,
    localize,
)

from . import audit
from .models import ItemResponse, Occasion, OutboundMessage, Participant, ProtocolVersion, Response
from .protocol.parse import Protocol
from .protocol.registry import ProtocolCache, current_version, protocol_cache

CHANNEL = "web"
ITEMS_PER_PAGE = 8
# Invitations go out at `due_at` (or later, after quiet hours); a little slack keeps a link that
# arrives on a phone whose clock runs ahead, or a test message, from meeting a "not yet" page.
OPENS_EARLY = timedelta(minutes=15)
# Messages that need not go out once the questionnaire is done.
CANCELLED_ON_COMPLETION = ("reminder", "invitation")
# Occasions that can still be answered (for "your next one is ...").
UPCOMING = ("scheduled", "sent", "opened", "partial")



# --- why a survey cannot be answered -----------------------------------------------------------


class SurveyUnavailable(Exception):
    """The survey cannot be answered now; `reason` names the page to show instead.

    `language` is the participant's, when known, for the page that says so.
    """

    reason = "unavailable"
    language = "en"
    participant_id: int | None = None


class SurveyNotFound(SurveyUnavailable):
    """No such occasion, or its participant is not (or no longer) someone we ask."""

    reason = "not_found"


class ParticipantLeft(SurveyUnavailable):
    """The participant has withdrawn: they are asked nothing more."""

    reason = "withdrawn"


class NotOpenYet(SurveyUnavailable):
    reason = "not_open"

    def __init__(self, opens_at: datetime, timezone: str) -> None:
        super().__init__(f"opens at {opens_at.isoformat()}")
        self.opens_at = opens_at
        self.timezone = timezone


class SurveyClosed(SurveyUnavailable):
    """The window has closed (or the occasion was cancelled); `next_due` is the next occasion."""

    reason = "closed"

    def __init__(self, closed_at: datetime | None, next_due: datetime | None, timezone: str):
        super().__init__("closed")
        self.closed_at = closed_at
        self.next_due = next_due
        self.timezone = timezone


class NoConsentInForce(SurveyUnavailable):
    """No active consent: nothing may be collected until the study team sorts it out."""

    reason = "no_consent"


class SurveyMisconfigured(SurveyUnavailable):
    """An instrument cannot be shown (wording missing, not in the protocol); for the study team.

    `problems` holds one message per instrument, naming the file to create.
    """

    reason = "misconfigured"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- the survey ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page: some (or all) items of one instrument; `part` of `parts` within it."""

    number: int
    instrument: LocalizedInstrument
    definition: Instrument
    items: tuple[LocalizedItem, ...]
    part: int
    parts: int

    @property
    def first_of_instrument(self) -> bool:
        return self.part == 1


@dataclass
class Survey:
    """An occasion opened for answering: pages in order and the answers saved so far."""

    occasion: Occasion
    participant: Participant
    protocol: Protocol
    consent_version: str
    pages: list[Page]
    responses: dict[str, Response] = field(default_factory=dict)
    # {instrument id: {item id: value}} for every answer saved so far.
    answers: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.occasion.status == "completed"

    @property
    def language(self) -> str:
        return self.participant.language or "en"

    def page(self, number: int) -> Page:
        """Page `number` (1-based); ValueError outside the survey."""
        if not 1 <= number <= len(self.pages):
            raise ValueError(f"no page {number}: the survey has {len(self.pages)}")
        return self.pages[number - 1]

    def answered(self, page: Page) -> bool:
        saved = self.answers.get(page.instrument.id, {})
        return all(item.id in saved for item in page.items)

    def first_unanswered(self) -> int | None:
        """The number of the first page with an unanswered item; None when all are answered."""
        for page in self.pages:
            if not self.answered(page):
                return page.number
        return None

    def resume_page(self) -> int:
        """Where a returning participant carries on: the first unanswered page, else the last."""
        return self.first_unanswered() or len(self.pages)


@dataclass
class PageOutcome:
    """What saving a page did. `problems` maps field names to messages (nothing was saved)."""

    survey: Survey
    problems: dict[str, str] = field(default_factory=dict)
    saved: bool = False
    submitted: bool = False
    # When the last page was sent but an earlier one is unanswered: go there instead.
    next_page: int | None = None


def field_name(instrument_id: str, item_id: str) -> str:
    """The form field of an item (the same on every page, so answers never cross instruments)."""
    return f"{instrument_id}.{item_id}"


# --- opening ------------------------------------------------------------------------------------


def open_survey(
    session: Session, occasion_id: int, *, now: datetime, protocols: ProtocolCache | None = None
) -> Survey:
    """The survey of `occasion_id`, marked `opened` the first time; SurveyUnavailable otherwise.

    A completed occasion opens as well (`survey.completed`), so the link shows its thank-you page.
    """
    try:
        return _open(session, occasion_id, now, protocol_cache(protocols))
    except SurveyUnavailable as exc:
        participant = session.get(Participant, exc.participant_id) if exc.participant_id else None
        exc.language = participant.language if participant and participant.language else "en"
        raise


def _open(session: Session, occasion_id: int, now: datetime, protocols: ProtocolCache) -> Survey:
    _lock_occasion(session, occasion_id)
    occasion = session.get(Occasion, occasion_id, populate_existing=True)
    if occasion is None:
        raise SurveyNotFound("no such occasion")
    participant = session.get(Participant, occasion.participant_id)
    if participant is None:
        raise SurveyNotFound("no such participant")
    try:
        return _open_for(session, occasion, participant, now, protocols)
    except SurveyUnavailable as exc:
        exc.participant_id = participant.id
        raise


def _open_for(
    session: Session,
    occasion: Occasion,
    participant: Participant,
    now: datetime,
    protocols: ProtocolCache,
) -> Survey:
    if participant.status == "withdrawn":
        raise ParticipantLeft("the participant has withdrawn")
    completed = occasion.status == "completed"
    if not completed:
        if participant.status != "enrolled":
            raise SurveyNotFound("the participant is not enrolled")
        _check_window(session, occasion, participant, now)
    try:
        consent_version = consent.version_in_force(session, participant)
    except consent.ConsentError as exc:
        if not completed:
            raise NoConsentInForce(str(exc)) from exc
        consent_version = ""
    protocol = _protocol(session, occasion, participant, protocols)
    survey = Survey(
        occasion=occasion,
        participant=participant,
        protocol=protocol,
        consent_version=consent_version,
        pages=[] if completed else _pages(protocol, occasion, participant.language or "en"),
    )
    _load_answers(session, survey)
    if occasion.status in ("scheduled", "sent"):
        occasion.status = "opened"
    if occasion.opened_at is None and not completed:
        occasion.opened_at = now
    session.add(occasion)
    return survey


def _lock_occasion(session: Session, occasion_id: int) -> None:
    # The first statement of the transaction: PostgreSQL locks the row, SQLite takes its one
    # write lock, so every read after this sees what the previous request committed.
    session.execute(text("UPDATE occasion SET id = id WHERE id = :id"), {"id": occasion_id})


def _check_window(
    session: Session, occasion: Occasion, participant: Participant, now: datetime
) -> None:
    zone = participant.timezone or "UTC"
    if occasion.status in ("cancelled", "missed") or now >= occasion.closes_at:
        closed_at = occasion.closes_at if occasion.status != "cancelled" else None
        raise SurveyClosed(closed_at, _next_due(session, occasion, now), zone)
    opens_at = occasion.due_at - OPENS_EARLY
    if now < opens_at:
        raise NotOpenYet(occasion.due_at, zone)


def _next_due(session: Session, occasion: Occasion, now: datetime) -> datetime | None:
    return session.exec(
        select(Occasion.due_at)
        .where(
            Occasion.participant_id == occasion.participant_id,
            Occasion.id != occasion.id,
            col(Occasion.status).in_(UPCOMING),
            Occasion.closes_at > now,
        )
        .order_by(col(Occasion.due_at))
        .limit(1)
    ).first()


def _protocol(
    session: Session, occasion: Occasion, participant: Participant, protocols: ProtocolCache
) -> Protocol:
    # The version in force, as the invitation's wording was: an amendment that supplies missing
    # wording reaches open occasions. An instrument the amendment dropped falls back below.
    version = current_version(session, participant.study_id)
    if version is None or not set(occasion.instruments) <= set(protocols.load(version).instruments):
        version = session.get(ProtocolVersion, occasion.protocol_version_id)
    return protocols.load(version)


def _pages(protocol: Protocol, occasion: Occasion, language: str) -> list[Page]:
    localized: list[tuple[Instrument, LocalizedInstrument]] = []
    problems = []
    for instrument_id in occasion.instruments:
        try:
            definition = protocol.instrument(instrument_id)
        except KeyError:
            problems.append(f"instrument '{instrument_id}' is not declared by the protocol")
            continue
        try:
            localized.append((definition, localize(definition, language)))
        except MissingWordingError as exc:
            problems.append(str(exc))
    if problems:
        raise SurveyMisconfigured(problems)
    pages: list[Page] = []
    for definition, view in localized:
        chunks = _chunks(view.items)
        for part, items in enumerate(chunks, start=1):
            pages.append(Page(len(pages) + 1, view, definition, items, part, len(chunks)))
    return pages


def _chunks(items: tuple[LocalizedItem, ...]) -> list[tuple[LocalizedItem, ...]]:
    # Even parts (13 items: 7 + 6, not 8 + 5), so no page is a lonely remainder.
    parts = -(-len(items) // ITEMS_PER_PAGE)
    size = -(-len(items) // parts)
    return [items[start : start + size] for start in range(0, len(items), size)]


def _load_answers(session: Session, survey: Survey) -> None:
    responses = session.exec(
        select(Response).where(Response.occasion_id == survey.occasion.id)
    ).all()
    survey.responses = {response.instrument_id: response for response in responses}
    by_id = {response.id: response.instrument_id for response in responses}
    if not by_id:
        return
    rows = session.exec(
        select(ItemResponse).where(col(ItemResponse.response_id).in_(list(by_id)))
    ).all()
    for row in rows:
        survey.answers.setdefault(by_id[row.response_id], {})[row.item_id] = row.value


# --- saving and submitting ----------------------------------------------------------------------


def save_page(
    session: Session,
    occasion_id: int,
    page_number: int,
    form: Mapping[str, str],
    *,
    now: datetime,
    messages: Callable[[str], Mapping[str, str]],
    protocols: ProtocolCache | None = None,
) -> PageOutcome:
    """Validate and keep one page's answers; on the last page, submit the survey.

    `form` holds the posted fields (`field_name(instrument, item)`). Every item of the page must
    be answered with a point of its scale; otherwise `problems` names each field and nothing is
    written. `messages(language)` gives the texts `choose_answer` and `not_allowed` (with
    `{low}` and `{high}`) in the participant's language. A survey already
    completed is left exactly as it is (a double submit).
    """
    survey = open_survey(session, occasion_id, now=now, protocols=protocols)
    if survey.completed:
        return PageOutcome(survey)
    page = survey.page(page_number)
    answers, problems = _page_answers(page, form, messages(survey.language))
    if problems:
        return PageOutcome(survey, problems=problems)
    response = _response(session, survey, page, now)
    _upsert_items(session, response, answers, now)
    survey.answers.setdefault(page.instrument.id, {}).update(answers)
    survey.occasion.status = "partial"
    session.add(survey.occasion)
    outcome = PageOutcome(survey, saved=True)
    if page.number == len(survey.pages):
        unanswered = survey.first_unanswered()
        if unanswered is None:
            _submit(session, survey, now)
            outcome.submitted = True
        else:
            outcome.next_page = unanswered
    return outcome


def _page_answers(
    page: Page, form: Mapping[str, str], messages: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, str]]:
    raw = {item.id: (form.get(field_name(page.instrument.id, item.id)) or "").strip()
           for item in page.items}  # fmt: skip
    problems = {
        field_name(page.instrument.id, item_id): messages["choose_answer"]
        for item_id, value in raw.items()
        if not value
    }
    given = {item_id: value for item_id, value in raw.items() if value}
    for problem in validate_answers(page.definition, given):
        scale = page.definition.scale_of(page.definition.item(problem.item))
        problems[field_name(page.instrument.id, problem.item)] = messages["not_allowed"].format(
            low=_number(scale.min), high=_number(scale.max)
        )
    if problems:
        return {}, problems
    return {item_id: float(value) for item_id, value in given.items()}, {}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _response(session: Session, survey: Survey, page: Page, now: datetime) -> Response:
    response = survey.responses.get(page.instrument.id)
    if response is None:
        response = Response(
            occasion_id=survey.occasion.id,
            participant_id=survey.participant.id,
            instrument_id=page.instrument.id,
            instrument_version=page.definition.version,
            language=shown_language(page.instrument),
            channel=CHANNEL,
            consent_version=survey.consent_version,
            status="partial",
            started_at=now,
        )
        session.add(response)
        session.flush()
        survey.responses[page.instrument.id] = response
    return response


def shown_language(view: LocalizedInstrument) -> str:
    """The language most of an instrument's items were shown in (after fallback)."""
    return Counter(item.language for item in view.items).most_common(1)[0][0]


def _upsert_items(
    session: Session, response: Response, answers: Mapping[str, float], now: datetime
) -> None:
    existing = {
        row.item_id: row
        for row in session.exec(
            select(ItemResponse).where(
                ItemResponse.response_id == response.id,
                col(ItemResponse.item_id).in_(list(answers)),
            )
        )
    }
    for item_id, value in answers.items():
        row = existing.get(item_id)
        if row is None:
            row = ItemResponse(response_id=response.id, item_id=item_id)
        if row.value != value or row.id is None:
            row.value = value
            row.answered_at = now
        session.add(row)


def _submit(session: Session, survey: Survey, now: datetime) -> None:
    for response in survey.responses.values():
        response.status = "complete"
        response.submitted_at = now
        session.add(response)
    occasion = survey.occasion
    before = {"status": occasion.status, "completed_at": None}
    occasion.status = "completed"
    occasion.completed_at = now
    session.add(occasion)
    cancelled = cancel_pending_messages(session, occasion.id, now=now)
    audit.record(
        session,
        f"participant:{survey.participant.code}",
        "survey.submit",
        entity_type="occasion",
        entity_id=occasion.id,
        before=before,
        after={"status": "completed", "completed_at": now.isoformat()},
        details={
            "channel": CHANNEL,
            "instruments": list(occasion.instruments),
            "items_answered": sum(len(values) for values in survey.answers.values()),
            "consent_version": survey.consent_version,
            "messages_cancelled": cancelled,
        },
        at=now,
    )


def cancel_pending_messages(session: Session, occasion_id: int, *, now: datetime) -> int:
    """Cancel the occasion's reminders (and an invitation) not yet sent; returns how many."""
    pending = session.exec(
        select(OutboundMessage).where(
            OutboundMessage.occasion_id == occasion_id,
            OutboundMessage.status == "pending",
            col(OutboundMessage.purpose).in_(CANCELLED_ON_COMPLETION),
        )
    ).all()
    for message in pending:
        message.status = "cancelled"
        message.status_updated_at = now
        session.add(message)
    return len(pending)
