"""The participant journey on the web: study link -> screener -> eConsent -> baseline ->
contacts -> time zone and language -> enrollment -> welcome, and the participant portal.

Thin: each view parses a form, calls `study.enrollment` and redirects (post/redirect/get, so a
refresh never submits twice). The browser holds only the signed Flask session with the
participant's code; every step re-checks on the server that the steps before it are done.
"""

from __future__ import annotations

import os
import zoneinfo
from functools import cache

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

import consent

from .. import enrollment
from ..enrollment import Journey, StepRefused, StudyUnavailable
from ..models import ContactPoint
from ..pii import PiiError
from ..schedule.materialise import TimeZoneError, change_time_zone
from .context import db, services
from .studies import localized

bp = Blueprint("participate", __name__)

SESSION_KEY = "participant"
INVITATION_KEY = "invitation"
PORTAL_SALT = "flourish.participant-portal"
LANGUAGE_NAMES = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "fr": "Français",
    "it": "Italiano",
    "nl": "Nederlands",
    "pt": "Português",
    "pt-BR": "Português",
}


@bp.after_request
def _private(response: Response) -> Response:
    # Participant pages hold health-related answers: never cache them on shared devices.
    response.headers["Cache-Control"] = "no-store"
    return response


# --- helpers ------------------------------------------------------------------------------------


def _now():
    return services().clock.now()


def _open(slug: str) -> enrollment.OpenStudy:
    try:
        return enrollment.open_study(db(), slug)
    except StudyUnavailable as exc:
        abort(Response(render_template("participate/unavailable.html", message=str(exc)), 404))


def _journey(slug: str | None = None) -> Journey | None:
    code = session.get(SESSION_KEY)
    return enrollment.load_journey(db(), code, slug) if code else None


STEP_ENDPOINTS = {
    "consent": "participate.information",
    "sign": "participate.sign",
    "baseline": "participate.baseline",
    "contacts": "participate.contacts",
    "preferences": "participate.preferences",
    "enroll": "participate.enroll",
    "enrolled": "participate.welcome",
}


def _step_url(journey: Journey, step: str | None = None) -> str:
    step = step or journey.next_step()
    if step == "withdrawn":
        return url_for("participate.portal")
    return url_for(STEP_ENDPOINTS[step], slug=journey.opened.study.slug)


def _require(slug: str, step: str) -> Journey:
    """The session's journey in this study with every step before `step` done, or a redirect."""
    journey = _journey(slug)
    if journey is None:
        abort(redirect(url_for("participate.join", slug=slug)))
    try:
        journey.require(step)
    except StepRefused as refused:
        abort(redirect(_step_url(journey, refused.step)))
    return journey


def _render(template: str, journey: Journey | None, opened=None, status: int = 200, **context):
    opened = opened or (journey.opened if journey else None)
    language = (
        journey.participant.language
        if journey
        else opened.protocol.model.study.default_language
        if opened
        else "en"
    )
    html = render_template(
        f"participate/{template}",
        journey=journey,
        opened=opened,
        protocol=opened.protocol if opened else None,
        lang=language,
        page_language=language,
        show_withdraw=journey is not None
        and journey.participant.status in ("consented", "enrolled"),
        **context,
    )
    return html, status


def _portal_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=PORTAL_SALT)


def portal_path(code: str) -> str:
    """The participant's personal portal path (signed; unguessable without the secret key)."""
    return url_for("participate.portal_token", token=_portal_serializer().dumps({"p": code}))


# --- study link, screening ----------------------------------------------------------------------


@bp.get("/join/<slug>")
def join(slug: str):
    opened = _open(slug)
    invited = False
    code = request.args.get("code", "").strip()
    if code:
        try:
            enrollment.find_invitation(db(), opened.study, code)
        except enrollment.InvitationInvalid as exc:
            return _render("unavailable.html", None, opened, 404, message=str(exc))
        session[INVITATION_KEY] = code
        invited = True
    journey = _journey(slug)
    return _render(
        "welcome.html",
        journey,
        opened,
        invited=invited,
        continue_url=_step_url(journey) if journey else None,
    )


@bp.route("/join/<slug>/screening", methods=["GET", "POST"])
def screening(slug: str):
    opened = _open(slug)
    journey = _journey(slug)
    if journey is not None:
        # Already screened: going back must not create a second participant.
        return redirect(_step_url(journey))
    form, problems = {}, {}
    if request.method == "POST":
        form = request.form
        invitation = None
        if session.get(INVITATION_KEY):
            try:
                invitation = enrollment.find_invitation(db(), opened.study, session[INVITATION_KEY])
            except enrollment.InvitationInvalid as exc:
                session.pop(INVITATION_KEY, None)
                return _render("unavailable.html", None, opened, 404, message=str(exc))
        outcome = enrollment.screen(db(), opened, form, now=_now(), invitation=invitation)
        problems = outcome.problems
        if not problems:
            db().commit()
            session.pop(INVITATION_KEY, None)
            if not outcome.eligible:
                return redirect(url_for("participate.not_eligible", slug=slug))
            session[SESSION_KEY] = outcome.journey.participant.code
            return redirect(_step_url(outcome.journey))
    return _render("screening.html", None, opened, 200, form=form, problems=problems)


@bp.get("/join/<slug>/not-eligible")
def not_eligible(slug: str):
    opened = _open(slug)
    return _render("not_eligible.html", None, opened)


# --- eConsent -----------------------------------------------------------------------------------


@bp.get("/join/<slug>/information", defaults={"number": 1})
@bp.get("/join/<slug>/information/<int:number>")
def information(slug: str, number: int):
    journey = _journey(slug)
    if journey is None:
        return redirect(url_for("participate.join", slug=slug))
    # Anyone screened in may read (and re-read, after joining) the information sheet.
    document = consent.load_document(journey.protocol)
    if not 1 <= number <= len(document.sections):
        abort(404)
    return _render(
        "information.html",
        journey,
        document=document,
        number=number,
        section=document.sections[number - 1],
        next_url=_after_information(journey),
    )


def _after_information(journey: Journey) -> str:
    slug = journey.opened.study.slug
    if journey.protocol.model.consent.comprehension:
        return url_for("participate.comprehension", slug=slug)
    return url_for("participate.sign", slug=slug)


@bp.route("/join/<slug>/questions", methods=["GET", "POST"])
def comprehension(slug: str):
    journey = _require(slug, "consent")
    if not journey.protocol.model.consent.comprehension:
        return redirect(url_for("participate.sign", slug=slug))
    chosen, wrong = {}, []
    if request.method == "POST":
        chosen = {
            q.id: request.form.get(q.id, "") for q in journey.protocol.model.consent.comprehension
        }
        wrong = enrollment.check_comprehension(db(), journey, chosen, now=_now())
        db().commit()
        if not wrong:
            return redirect(url_for("participate.sign", slug=slug))
        # Keep the right answers; the wrong ones must be chosen again after re-reading.
        chosen = {key: value for key, value in chosen.items() if key not in wrong}
    return _render(
        "comprehension.html",
        journey,
        chosen=chosen,
        wrong=wrong,
        attempts=journey.progress.comprehension_attempts,
    )


def _signature_from_form(journey: Journey, record) -> tuple[str, dict, str]:
    """Sign (or re-sign) with the typed name and optional items posted; commit on success.

    Returns the name, the options and a problem to show ('' when signed).
    """
    name = request.form.get("signed_name", "")
    options = enrollment.consent_options(journey.protocol, request.form)
    try:
        record(db(), services().pii, journey, signed_name=name, options=options, now=_now())
    except (ValueError, consent.ConsentError) as exc:
        problem = str(exc)
        return name, options, problem[0].upper() + problem[1:]
    db().commit()
    return name, options, ""


@bp.route("/join/<slug>/sign", methods=["GET", "POST"])
def sign(slug: str):
    journey = _require(slug, "sign")
    protocol = journey.protocol
    options = {item.id: item.default for item in protocol.model.consent.optional_items}
    name, problem = "", ""
    if journey.consent_is_current:
        return redirect(url_for("participate.signed", slug=slug))
    if request.method == "POST":
        name, options, problem = _signature_from_form(journey, enrollment.record_consent)
        if not problem:
            return redirect(url_for("participate.signed", slug=slug))
    return _render(
        "sign.html",
        journey,
        document=consent.load_document(protocol),
        options=options,
        name=name,
        problem=problem,
        today=_now(),
    )


@bp.get("/join/<slug>/signed")
def signed(slug: str):
    journey = _require(slug, "baseline")
    return _render("signed.html", journey, next_url=_step_url(journey))


def _consent_copy(journey: Journey) -> Response:
    # After withdrawal no consent is active, but the participant may still keep their copy.
    history = consent.consent_history(db(), journey.participant)
    if not history:
        abort(404)
    signed_consent = history[-1]
    try:
        signed_name = services().pii.decrypt(signed_consent.signature_encrypted)
    except PiiError:
        abort(404)  # erased on withdrawal, as the protocol says
    document = consent.load_document(journey.protocol)
    copy = document.as_html_copy(
        journey.participant.code,
        signed_name,
        signed_consent.signed_at,
        signed_consent.options,
        language=journey.participant.language,
    )
    filename = f"consent-{journey.opened.study.slug}-{journey.participant.code}.html"
    return Response(
        copy,
        mimetype="text/html",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/join/<slug>/consent-copy")
def consent_copy(slug: str):
    journey = _journey(slug)
    if journey is None:
        return redirect(url_for("participate.join", slug=slug))
    return _consent_copy(journey)


# --- baseline, contacts, preferences ------------------------------------------------------------


@bp.route("/join/<slug>/baseline", methods=["GET", "POST"])
def baseline(slug: str):
    journey = _require(slug, "baseline")
    instruments = [
        enrollment.load_instrument(journey.protocol, instrument_id)
        for instrument_id in enrollment.baseline_instrument_ids(journey.protocol)
    ]
    if not instruments:
        return redirect(_step_url(journey))
    answers: dict[str, dict[str, str]] = {
        i.id: {
            k: str(int(v))
            for k, v in journey.progress.baseline.get(i.id, {}).get("answers", {}).items()
        }
        for i in instruments
    }
    problems: dict[str, str] = {}
    if request.method == "POST":
        for instrument in instruments:
            prefix = f"{instrument.id}."
            form = {
                key[len(prefix) :]: value
                for key, value in request.form.items()
                if key.startswith(prefix)
            }
            answers[instrument.id] = form
            for item_id, message in enrollment.record_baseline(
                db(), journey, instrument, form, now=_now()
            ).items():
                problems[f"{instrument.id}.{item_id}"] = message
        if not problems:
            db().commit()
            return redirect(url_for("participate.contacts", slug=slug))
        db().rollback()
    return _render(
        "baseline.html",
        journey,
        instruments=instruments,
        answers=answers,
        problems=problems,
        options={
            (i.id, item.id): scale_options(i.scale_of(item), journey.participant.language)
            for i in instruments
            for item in i.items
        },
    )


def scale_options(scale, language: str) -> list[tuple[str, str]]:
    """(value, label) for every point of a response scale, in the order the form shows them.

    A fully labelled scale keeps its anchors' order (WHO-5 starts at "All of the time"), so the
    page matches the published form; otherwise the points run from low to high.
    """

    def shown(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else f"{value:g}"

    points = []
    value = scale.min
    while value <= scale.max + 1e-9:
        points.append(round(value, 9))
        value += scale.step
    labels = {float(a.value): a.label for a in scale.anchors}
    if set(labels) >= {float(p) for p in points}:
        order = [float(a.value) for a in scale.anchors]
    else:
        order = [float(p) for p in points]
    return [
        (
            shown(point),
            localized(labels[point], language) if point in labels else shown(point),
        )
        for point in order
    ]


@bp.route("/join/<slug>/contact", methods=["GET", "POST"])
def contacts(slug: str):
    journey = _require(slug, "contacts")
    vault = services().pii
    form = {
        "channel": journey.participant.preferred_channel if journey.progress.contacts_at else "",
        "phone": "",
        "email": "",
    }
    for point in db().exec(
        select(ContactPoint).where(ContactPoint.participant_id == journey.participant.id)
    ):
        form["phone" if point.kind == "sms" else "email"] = vault.decrypt(point.value_encrypted)
    problems: dict[str, str] = {}
    if request.method == "POST":
        form = {key: request.form.get(key, "") for key in ("channel", "phone", "email")}
        problems = enrollment.record_contacts(
            db(),
            vault,
            journey,
            channel=form["channel"],
            phone=form["phone"],
            email=form["email"],
            now=_now(),
        )
        if not problems:
            db().commit()
            return redirect(url_for("participate.preferences", slug=slug))
    return _render(
        "contacts.html",
        journey,
        form=form,
        problems=problems,
        channels=enrollment.channel_choices(journey.protocol),
    )


@cache
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone this server knows, sorted, without the legacy aliases' clutter first."""
    return tuple(sorted(zoneinfo.available_timezones()))


@bp.route("/join/<slug>/settings", methods=["GET", "POST"])
def preferences(slug: str):
    journey = _require(slug, "preferences")
    participant = journey.participant
    confirmed = journey.progress.preferences_at is not None
    form = {
        "timezone": participant.timezone if confirmed else "",
        "language": participant.language,
    }
    problems: dict[str, str] = {}
    if request.method == "POST":
        form = {key: request.form.get(key, "").strip() for key in ("timezone", "language")}
        problems = enrollment.record_preferences(
            db(), journey, timezone=form["timezone"], language=form["language"], now=_now()
        )
        if not problems:
            db().commit()
            return redirect(url_for("participate.enroll", slug=slug))
    return _render(
        "preferences.html",
        journey,
        form=form,
        problems=problems,
        timezones=timezone_names(),
        languages=[
            (code, LANGUAGE_NAMES.get(code, code))
            for code in journey.protocol.model.study.languages
        ],
    )


# --- enrollment and welcome ---------------------------------------------------------------------


@bp.route("/join/<slug>/join-now", methods=["GET", "POST"])
def enroll(slug: str):
    journey = _journey(slug)
    if journey is not None and journey.next_step() == "enrolled":
        # A second submit of this form, or a refresh: the allocation already exists.
        return redirect(url_for("participate.welcome", slug=slug))
    journey = _require(slug, "enroll")
    if request.method == "POST":
        try:
            enrollment.enroll(
                db(),
                journey,
                now=_now(),
                environ=os.environ,
                secret_key=services().settings.secret_key,
            )
            db().commit()
        except IntegrityError:
            # A concurrent submit allocated first; its allocation stands.
            db().rollback()
        except StepRefused as refused:
            db().rollback()
            return redirect(_step_url(journey, refused.step))
        return redirect(url_for("participate.welcome", slug=slug))
    return _render("enroll.html", journey)


@bp.get("/join/<slug>/welcome")
def welcome(slug: str):
    journey = _journey(slug)
    if journey is None:
        return redirect(url_for("participate.join", slug=slug))
    if journey.next_step() != "enrolled":
        return redirect(_step_url(journey))
    return _render("enrolled.html", journey, **_portal_context(journey))


def _portal_context(journey: Journey) -> dict:
    arm = enrollment.arm_of(db(), journey.participant)
    return {
        "arm": journey.protocol.model.arm(arm.key) if arm is not None else None,
        "schedule": enrollment.schedule_summary(
            journey.protocol, journey.participant.preferred_channel
        ),
        "portal_path": portal_path(journey.participant.code),
        # The address as messages give it, for the participant to keep.
        "portal_url": services().settings.public_url + portal_path(journey.participant.code),
        "needs_reconsent": consent.needs_reconsent(db(), journey.participant, journey.protocol),
    }


# --- the participant portal ---------------------------------------------------------------------


@bp.get("/p/<token>")
def portal_token(token: str):
    try:
        payload = _portal_serializer().loads(token)
    except BadSignature:
        abort(404)
    code = payload.get("p") if isinstance(payload, dict) else None
    if not code or enrollment.load_journey(db(), code) is None:
        abort(404)
    # The token leaves the address bar at once, so it does not linger in history or referrers.
    session.clear()
    session[SESSION_KEY] = code
    return redirect(url_for("participate.portal"))


def _portal_journey() -> Journey:
    journey = _journey()
    if journey is None:
        abort(Response(render_template("participate/no_session.html"), 403))
    return journey


@bp.get("/p/")
def portal():
    journey = _portal_journey()
    step = journey.next_step()
    if step == "withdrawn":
        return _render("withdrawn.html", journey)
    if step != "enrolled":
        return redirect(_step_url(journey))
    return _render("portal.html", journey, **_portal_context(journey))


@bp.route("/p/timezone", methods=["GET", "POST"])
def time_zone():
    """The portal's "My time zone": the zone in force; a change re-plans what is to come."""
    journey = _portal_journey()
    if journey.next_step() != "enrolled":
        return redirect(url_for("participate.portal"))
    participant = journey.participant
    problems: dict[str, str] = {}
    chosen = ""
    if request.method == "POST":
        chosen = request.form.get("timezone", "").strip()
        try:
            change = change_time_zone(
                db(),
                participant,
                chosen,
                now=_now(),
                actor=journey.actor,
                secret_key=services().settings.secret_key,
            )
        except TimeZoneError:
            db().rollback()
            problems["timezone"] = "Choose your time zone from the list, for example Europe/London."
        else:
            db().commit()
            return redirect(url_for("participate.time_zone", saved=int(change.changed)))
    return _render(
        "timezone.html",
        journey,
        status=422 if problems else 200,
        current=participant.timezone,
        local_now=_now().astimezone(zoneinfo.ZoneInfo(participant.timezone)),
        chosen=chosen,
        saved=request.args.get("saved"),
        problems=problems,
        timezones=timezone_names(),
    )


@bp.get("/p/consent-copy")
def portal_consent_copy():
    return _consent_copy(_portal_journey())


@bp.route("/p/withdraw", methods=["GET", "POST"])
def withdraw():
    journey = _portal_journey()
    if journey.participant.status not in ("consented", "enrolled", "completed"):
        return redirect(url_for("participate.portal"))
    if request.method == "POST":
        result = enrollment.withdraw(
            db(), journey, now=_now(), reason=request.form.get("reason", "")
        )
        db().commit()
        if result.erasure is not None:
            consent.purge_erased_residues(services().engine)
        return redirect(url_for("participate.portal"))
    return _render("withdraw.html", journey)


@bp.route("/p/reconsent", methods=["GET", "POST"])
def reconsent():
    journey = _portal_journey()
    if not consent.needs_reconsent(db(), journey.participant, journey.protocol):
        return redirect(url_for("participate.portal"))
    protocol = journey.protocol
    previous = journey.active_consent.options if journey.active_consent else {}
    options = {
        item.id: previous.get(item.id, item.default)
        for item in protocol.model.consent.optional_items
    }
    name, problem = "", ""
    if request.method == "POST":
        name, options, problem = _signature_from_form(journey, enrollment.reconsent)
        if not problem:
            return redirect(url_for("participate.portal"))
    return _render(
        "reconsent.html",
        journey,
        document=consent.load_document(protocol),
        options=options,
        name=name,
        problem=problem,
        today=_now(),
    )
