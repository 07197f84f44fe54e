"""Web surveys at `/s/<token>`: the link in an invitation, a page per instrument (or part).

Thin: the token is verified (`study.schedule.links`), then `study.surveys` opens the occasion,
validates and saves each page and submits the last one. Every page is committed before the
browser hears back (post/redirect/get), so an acknowledged page is never lost, and the same
link resumes at the first unanswered page.

Every fixed string a participant reads is in `TEXTS`, by language; a translation is one more
entry. The page's `lang` is the language those strings are in; the questionnaire's text carries
its own `lang` where fallback showed it in another language.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, redirect, render_template, request, url_for

from .. import surveys
from ..schedule.links import verify_survey_token
from .context import db, services

log = logging.getLogger(__name__)

bp = Blueprint("surveys", __name__, url_prefix="/s")

TEXTS: dict[str, dict[str, object]] = {
    "en": {
        "title": "Your questionnaire",
        "progress": "Page {page} of {pages}",
        "part": "Part {part} of {parts}",
        "reference_period": "Please think about {period}.",
        "saved_note": "Your answers are saved on every page. You can stop and come back later "
        "with the same link until {closes}.",
        "continue": "Save and continue",
        "submit": "Submit my answers",
        "back": "Back to the previous page",
        "problem": "There is a problem",
        "error_prefix": "Error",
        "choose_answer": "Choose an answer.",
        "not_allowed": "Choose one of the answers shown (from {low} to {high}).",
        "thanks_title": "Thank you",
        "thanks": "Your answers have been sent. Thank you for taking the time.",
        "thanks_next": "Your next questionnaire is on {when}. We will send you a link.",
        "not_found_title": "This link does not work",
        "not_found": "We could not find a questionnaire for this link. Please check that you "
        "opened the whole link from your message. If it still does not work, contact the "
        "study team.",
        "withdrawn_title": "You have left the study",
        "withdrawn": "You have withdrawn from the study, so there are no more questions for "
        "you. Thank you for the time you gave to it.",
        "not_open_title": "This questionnaire is not open yet",
        "not_open": "This questionnaire opens on {when}. Please come back then with the same link.",
        "closed_title": "This questionnaire has closed",
        "closed": "This questionnaire closed on {when}, so answers can no longer be sent.",
        "cancelled": "This questionnaire is no longer needed, so answers can no longer be sent.",
        "closed_next": "Your next one is on {when}. We will send you a link.",
        "no_consent_title": "We cannot take answers just now",
        "no_consent": "We cannot record answers for you at the moment. Please contact the "
        "study team, who will explain.",
        "misconfigured_title": "This questionnaire cannot be shown yet",
        "misconfigured": "Something is missing on our side, so this questionnaire cannot be "
        "shown. Nothing you did caused this. Please try again later or contact the study team.",
        "for_team": "For the study team",
        "when": "{weekday} {day} {month} {year} at {time}",
        "weekdays": (
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ),
        "months": (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
    },
}
TEXT_LANGUAGES = tuple(TEXTS)


def texts_for(language: str | None) -> tuple[str, dict[str, object]]:
    """(language, strings): the participant's language, its base language, else English."""
    parts = (language or "en").split("-")
    by_lower = {code.lower(): code for code in TEXTS}
    for end in range(len(parts), 0, -1):
        code = by_lower.get("-".join(parts[:end]).lower())
        if code is not None:
            return code, TEXTS[code]
    return "en", TEXTS["en"]


def format_when(instant: datetime, zone: str, texts: dict[str, object]) -> str:
    """An instant as the participant reads it: in their time zone, in their words."""
    local = instant.astimezone(ZoneInfo(zone or "UTC"))
    return str(texts["when"]).format(
        weekday=texts["weekdays"][local.weekday()],
        day=local.day,
        month=texts["months"][local.month - 1],
        year=local.year,
        time=local.strftime("%H:%M"),
    )


@bp.after_request
def _private(response: Response) -> Response:
    # Answers about health and wellbeing: never cached on a shared device.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<token>", methods=["GET", "POST"])
def survey(token: str):
    occasion_id = verify_survey_token(services().settings, token)
    if occasion_id is None:
        return _unavailable(surveys.SurveyNotFound("bad token"), None)
    session = db()
    now = services().clock.now()
    try:
        if request.method == "POST":
            return _post(session, token, occasion_id, now)
        return _get(session, occasion_id, now)
    except surveys.SurveyUnavailable as exc:
        session.commit()  # an "opened" mark made before the refusal is still true
        if isinstance(exc, surveys.SurveyMisconfigured):
            log.error("survey for occasion %s cannot be shown: %s", occasion_id, exc)
        return _unavailable(exc, occasion_id)


def _get(session, occasion_id: int, now: datetime):
    survey = surveys.open_survey(session, occasion_id, now=now)
    session.commit()
    if survey.completed:
        return _thanks(survey, now)
    furthest = survey.first_unanswered() or len(survey.pages)
    number = request.args.get("page", type=int) or survey.resume_page()
    number = min(max(number, 1), furthest)  # no skipping ahead past unanswered pages
    return _render_page(survey, survey.page(number), {}, {})


def _post(session, token: str, occasion_id: int, now: datetime):
    number = request.form.get("page", type=int) or 0
    try:
        outcome = surveys.save_page(
            session, occasion_id, number, request.form, now=now, messages=_messages
        )
    except ValueError:  # a page number the survey does not have (a stale or edited form)
        session.rollback()
        return redirect(url_for("surveys.survey", token=token), 303)
    survey = outcome.survey
    if outcome.problems:
        session.commit()
        posted = {key: value for key, value in request.form.items() if key != "csrf_token"}
        return _render_page(survey, survey.page(number), outcome.problems, posted), 422
    session.commit()  # durable before the participant is told anything
    if survey.completed or outcome.submitted:
        return redirect(url_for("surveys.survey", token=token), 303)
    next_page = outcome.next_page or number + 1
    return redirect(url_for("surveys.survey", token=token, page=next_page), 303)


def _messages(language: str) -> dict[str, str]:
    """The validation messages for the domain, in the participant's language."""
    _, texts = texts_for(language)
    return {"choose_answer": str(texts["choose_answer"]), "not_allowed": str(texts["not_allowed"])}


def _context(survey: surveys.Survey | None, language: str | None):
    page_language, texts = texts_for(language)
    opened = SimpleNamespace(protocol=survey.protocol) if survey else None
    return {
        "opened": opened,
        "journey": None,
        "show_withdraw": False,
        "page_language": page_language,
        "lang": language or "en",  # the participant's, for texts the protocol localizes
        "t": texts,
    }


def _render_page(survey: surveys.Survey, page: surveys.Page, problems, posted):
    context = _context(survey, survey.language)
    saved = survey.answers.get(page.instrument.id, {})
    checked = {}
    for item in page.items:
        name = surveys.field_name(page.instrument.id, item.id)
        if name in posted:
            checked[item.id] = posted[name]
        elif saved.get(item.id) is not None:
            checked[item.id] = _value(saved[item.id])
    return render_template(
        "surveys/page.html",
        survey=survey,
        page=page,
        pages=len(survey.pages),
        problems=problems,
        checked=checked,
        options={item.id: options(item) for item in page.items},
        rating={item.id: is_rating(item) for item in page.items},
        field_name=surveys.field_name,
        closes=format_when(survey.occasion.closes_at, survey.participant.timezone, context["t"]),
        is_last=page.number == len(survey.pages),
        **context,
    )


def _thanks(survey: surveys.Survey, now: datetime):
    context = _context(survey, survey.language)
    upcoming = surveys._next_due(db(), survey.occasion, now)
    when = format_when(upcoming, survey.participant.timezone, context["t"]) if upcoming else None
    return render_template("surveys/thanks.html", next_when=when, **context)


def _unavailable(exc: surveys.SurveyUnavailable, occasion_id: int | None):
    context = _context(None, exc.language)
    t = context["t"]
    when = next_when = None
    if isinstance(exc, surveys.NotOpenYet):
        when = format_when(exc.opens_at, exc.timezone, t)
    if isinstance(exc, surveys.SurveyClosed):
        when = format_when(exc.closed_at, exc.timezone, t) if exc.closed_at else None
        next_when = format_when(exc.next_due, exc.timezone, t) if exc.next_due else None
    status = {"not_found": 404, "withdrawn": 410, "closed": 410}.get(exc.reason, 200)
    if isinstance(exc, surveys.SurveyMisconfigured):
        status = 503
    html = render_template(
        "surveys/unavailable.html",
        reason=exc.reason,
        when=when,
        next_when=next_when,
        team_problems=getattr(exc, "problems", []),
        **context,
    )
    return html, status


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def options(item) -> list[tuple[str, str]]:
    """(value, label) for each answer of an item: the anchors of a verbal scale in the order
    the instrument gives them; every point of a numeric rating, labelled by its number."""
    scale = item.scale
    if not is_rating(item):
        return [(_value(anchor.value), anchor.label) for anchor in scale.anchors]
    points, value = [], scale.min
    while value <= scale.max + 1e-9:
        points.append((_value(value), _value(value)))
        value += scale.step
    return points


def is_rating(item) -> bool:
    """True for a numeric rating (0-10 with labelled ends): not every point has an anchor."""
    scale = item.scale
    points = round((scale.max - scale.min) / scale.step) + 1
    return len(scale.anchors) < points


def end_labels(item) -> tuple[str, str]:
    """The labels of a rating's lowest and highest points ('' where none is given)."""
    labels = {anchor.value: anchor.label for anchor in item.scale.anchors}
    return labels.get(item.scale.min, ""), labels.get(item.scale.max, "")


@bp.app_template_global("survey_end_labels")
def _end_labels(item) -> tuple[str, str]:
    return end_labels(item)
