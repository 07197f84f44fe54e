"""Researcher pages about a study's participants: the list, one participant, withdrawal,
data-subject export and erasure.

Who may do what:
- everyone signed in (`view_study`) sees pseudonymous facts: codes, status, dates, consent;
- the arm is shown to those who run the intervention or may unblind (`manage_participants`,
  `unblind`), and to analysts, who work blinded, only once the study is unblinded
  (`study.blinding`, as on the dashboards);
- contact details and signed names only to `view_contacts` (coordinator, investigator, admin),
  on request, and every such view is audited;
- withdrawal and a change of time zone (which re-plans questionnaires to come) to
  `manage_participants`;
- export and erasure of everything held on a person to those who hold both the permission for
  the personal data involved and `unblind` (investigator, admin): an export reveals the
  allocation, and an erasure cannot be undone.
Nothing here reveals a future allocation: pages only read allocations already made.
"""

from __future__ import annotations

import json
from datetime import UTC

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlmodel import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

import consent
from consent.roster import list_participants, reveal_contacts
from consent.withdrawal import MAX_REASON_LENGTH

from .. import blinding
from ..models import Allocation, Arm, Occasion, Participant, Study
from ..models.participants import PARTICIPANT_STATUSES
from ..protocol import Protocol, ProtocolError
from ..protocol.registry import current_version, parsed_version
from ..schedule.materialise import ZONE_CHANGEABLE, TimeZoneError, change_time_zone
from .auth import current_actor, permission_required
from .context import db, services
from .participate import timezone_names

bp = Blueprint("participants", __name__, url_prefix="/studies/<slug>/participants")

ERASURE_REASON = "data-subject erasure request"


class WithdrawForm(FlaskForm):
    reason = TextAreaField(
        "Reason (optional; kept with the participant, never in the audit log)",
        validators=[Length(max=MAX_REASON_LENGTH)],
    )
    confirm = BooleanField(
        "I confirm this participant is to be withdrawn now: every pending invitation and "
        "reminder is cancelled and cannot be restored.",
        validators=[DataRequired("Tick the box to confirm the withdrawal.")],
    )


class EraseForm(FlaskForm):
    confirm_code = StringField(
        "Type the participant code to confirm erasure",
        validators=[DataRequired("Type the participant code to confirm.")],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    keep_pseudonymous_data = BooleanField(
        "Keep pseudonymous answers and usage data (erase only what identifies the person)"
    )


class TimeZoneForm(FlaskForm):
    # The domain validates the zone (and says so clearly); the select only offers the choices.
    timezone = SelectField("New time zone", validate_choice=False)


def _timezone_form(participant: Participant) -> TimeZoneForm:
    form = TimeZoneForm(data={"timezone": participant.timezone})
    form.timezone.choices = list(timezone_names())
    return form


class ExportForm(FlaskForm):
    """Only a CSRF token: an export is a POST so that another site cannot trigger one."""


def _can_see_arm(study: Study) -> bool:
    """Those who run the intervention or may unblind see arms; everyone once it is unblinded."""
    if current_user.can("manage_participants") or current_user.can("unblind"):
        return True
    return blinding.is_unblinded(db(), study.id)


def _study(slug: str) -> Study:
    study = db().exec(select(Study).where(Study.slug == slug)).first()
    if study is None:
        abort(404)
    return study


def _participant(study: Study, code: str) -> Participant:
    participant = (
        db()
        .exec(select(Participant).where(Participant.study_id == study.id, Participant.code == code))
        .first()
    )
    if participant is None:
        abort(404)
    return participant


def _protocol(study: Study) -> Protocol | None:
    version = current_version(db(), study.id)
    if version is None:
        return None
    try:
        return parsed_version(version)
    except ProtocolError:
        return None


@bp.get("/")
@login_required
@permission_required("view_study")
def index(slug: str):
    study = _study(slug)
    status = request.args.get("status", "")
    if status and status not in PARTICIPANT_STATUSES:
        status = ""
    reconsent_only = request.args.get("reconsent") == "1"
    page = request.args.get("page", "1")
    roster = list_participants(
        db(),
        study.id,
        _protocol(study),
        status=status or None,
        reconsent_only=reconsent_only,
        page=int(page) if page.isdigit() else 1,
    )
    contacts = None
    if request.args.get("contacts") == "1":
        if not current_user.can("view_contacts"):
            abort(403)
        contacts = reveal_contacts(
            db(),
            services().pii,
            roster.rows,
            actor=current_actor(),
            now=services().clock.now(),
            study_id=study.id,
        )
        db().commit()
    return render_template(
        "participants/index.html",
        study=study,
        roster=roster,
        statuses=PARTICIPANT_STATUSES,
        status=status,
        reconsent_only=reconsent_only,
        contacts=contacts,
        show_arm=_can_see_arm(study),
    )


@bp.get("/<code>")
@login_required
@permission_required("view_study")
def detail(slug: str, code: str):
    study = _study(slug)
    participant = _participant(study, code)
    return _render_detail(study, participant, WithdrawForm(), EraseForm())


def _render_detail(
    study, participant, withdraw_form, erase_form, status: int = 200, timezone_form=None
):
    session = db()
    protocol = _protocol(study)
    contacts, signatures = None, None
    history = consent.consent_history(session, participant)
    if request.args.get("contacts") == "1":
        if not current_user.can("view_contacts"):
            abort(403)
        contacts = reveal_contacts(
            session,
            services().pii,
            [participant],
            actor=current_actor(),
            now=services().clock.now(),
        )[participant.id]
        signatures = {
            c.id: services().pii.decrypt(c.signature_encrypted) if c.signature_encrypted else None
            for c in history
        }
        session.commit()
    arm = None
    if _can_see_arm(study):
        arm = session.exec(
            select(Arm)
            .join(Allocation, Allocation.arm_id == Arm.id)
            .where(Allocation.participant_id == participant.id)
        ).first()
    occasions = session.exec(select(Occasion).where(Occasion.participant_id == participant.id))
    by_status: dict[str, int] = {}
    for occasion in occasions:
        by_status[occasion.status] = by_status.get(occasion.status, 0) + 1
    page = render_template(
        "participants/detail.html",
        study=study,
        participant=participant,
        protocol=protocol,
        history=history,
        active=consent.current_consent(session, participant),
        needs_reconsent=(
            consent.needs_reconsent(session, participant, protocol) if protocol else None
        ),
        contacts=contacts,
        signatures=signatures,
        arm=arm,
        show_arm=_can_see_arm(study),
        occasions_by_status=by_status,
        withdraw_form=withdraw_form,
        erase_form=erase_form,
        timezone_form=timezone_form or _timezone_form(participant),
        can_change_timezone=current_user.can("manage_participants")
        and participant.status in ZONE_CHANGEABLE,
        export_form=ExportForm(),
        can_withdraw=current_user.can("manage_participants"),
        can_export=current_user.can("view_contacts") and current_user.can("unblind"),
        can_erase=current_user.can("manage_participants") and current_user.can("unblind"),
    )
    return page, status


@bp.post("/<code>/withdraw")
@login_required
@permission_required("manage_participants")
def withdraw(slug: str, code: str):
    study = _study(slug)
    participant = _participant(study, code)
    form = WithdrawForm()
    if not form.validate_on_submit():
        return _render_detail(study, participant, form, EraseForm(), 400)
    protocol = _protocol(study)
    if protocol is None:
        flash("The study has no valid protocol in force, so it cannot say what to keep.", "error")
        return redirect(url_for(".detail", slug=slug, code=code))
    session = db()
    result = consent.withdraw(
        session,
        participant=participant,
        protocol=protocol,
        now=services().clock.now(),
        actor=current_actor(),
        reason=form.reason.data or "",
        by="coordinator",
    )
    session.commit()
    if result.erasure is not None:
        consent.purge_erased_residues(services().engine)
    if result.already_withdrawn:
        flash(f"{code} was already withdrawn.", "info")
    else:
        kept = "erased" if result.erasure is not None else "kept"
        flash(
            f"{code} is withdrawn: {result.cancelled_messages} pending message(s) and "
            f"{result.cancelled_occasions} open occasion(s) cancelled; data collected so far "
            f"is {kept}, as the protocol says.",
            "info",
        )
    return redirect(url_for(".detail", slug=slug, code=code))


@bp.post("/<code>/timezone")
@login_required
@permission_required("manage_participants")
def time_zone(slug: str, code: str):
    """Move the participant to another zone: occasions still to come are re-planned there."""
    study = _study(slug)
    participant = _participant(study, code)
    form = _timezone_form(participant)
    if not form.validate_on_submit():
        return _render_detail(study, participant, WithdrawForm(), EraseForm(), 400, form)
    session = db()
    try:
        change = change_time_zone(
            session,
            participant,
            form.timezone.data or "",
            now=services().clock.now(),
            actor=current_actor(),
            secret_key=services().settings.secret_key,
        )
    except TimeZoneError as exc:
        session.rollback()
        if participant.status not in ZONE_CHANGEABLE:  # no form to show the problem beside
            flash(f"{exc}.", "error")
            return _render_detail(study, participant, WithdrawForm(), EraseForm(), 409)
        form.timezone.errors = [f"{exc}."]
        return _render_detail(study, participant, WithdrawForm(), EraseForm(), 400, form)
    session.commit()
    if not change.changed:
        flash(f"{code} was already in {change.after}; nothing changed.", "info")
    elif change.replanned is None:
        flash(f"{code} is now in {change.after}; enrollment will plan the schedule there.", "info")
    else:
        flash(
            f"{code} is now in {change.after} (was {change.before}): "
            f"{change.replanned.cancelled_occasions} occasion(s) still to come cancelled and "
            f"{len(change.replanned.occasions)} planned at the same local times; answered, sent, "
            "past and open occasions are unchanged.",
            "info",
        )
    return redirect(url_for(".detail", slug=slug, code=code))


@bp.post("/<code>/export")
@login_required
@permission_required("view_contacts")
@permission_required("unblind")
def export(slug: str, code: str):
    study = _study(slug)
    participant = _participant(study, code)
    if not ExportForm().validate_on_submit():
        abort(400)
    session = db()
    now = services().clock.now()
    data = consent.export_subject(
        session, services().pii, participant, actor=current_actor(), now=now
    )
    session.commit()
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{code}-{stamp}.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/<code>/erase")
@login_required
@permission_required("manage_participants")
@permission_required("unblind")
def erase(slug: str, code: str):
    study = _study(slug)
    participant = _participant(study, code)
    form = EraseForm()
    if not form.validate_on_submit():
        return _render_detail(study, participant, WithdrawForm(), form, 400)
    if (form.confirm_code.data or "").strip() != participant.code:
        form.confirm_code.errors = [f"Type {participant.code} exactly to confirm."]
        return _render_detail(study, participant, WithdrawForm(), form, 400)
    session = db()
    now = services().clock.now()
    erased_on_withdrawal = 0
    if participant.status in consent.signing.TAKING_PART:
        protocol = _protocol(study)
        if protocol is None:
            abort(409)
        # Someone asking for erasure is leaving the study: stop everything pending first.
        withdrawal = consent.withdraw(
            session,
            participant=participant,
            protocol=protocol,
            now=now,
            actor=current_actor(),
            reason=ERASURE_REASON,
            by="coordinator",
        )
        if withdrawal.erasure is not None:  # the protocol erases on withdrawal already
            erased_on_withdrawal = withdrawal.erasure.total
    report = consent.erase_subject(
        session,
        participant=participant,
        now=now,
        actor=current_actor(),
        keep_pseudonymous_data=bool(form.keep_pseudonymous_data.data),
    )
    session.commit()
    consent.purge_erased_residues(services().engine)
    flash(
        f"Erased the personal data of {code}: {report.total + erased_on_withdrawal} value(s) "
        "or row(s) removed "
        "(counts are in the audit log).",
        "info",
    )
    return redirect(url_for(".detail", slug=slug, code=code))
