"""Researcher pages about studies: the list, and one study's protocol, arms and versions."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import login_required
from sqlmodel import select

from .. import overview
from ..models import Study
from ..protocol import Protocol, ProtocolError
from ..protocol.parse import normalise
from ..protocol.registry import parsed_version
from .auth import permission_required
from .context import db

bp = Blueprint("studies", __name__, url_prefix="/studies")


@bp.app_template_filter("localized")
def localized(text: dict[str, str] | str | None, language: str = "en") -> str:
    """Text in `language`, else English, else whichever language the protocol gives."""
    if text is None or isinstance(text, str):
        return text or ""
    return text.get(language) or text.get("en") or next(iter(text.values()), "")


@bp.get("/")
@login_required
@permission_required("view_study")
def index():
    return render_template("studies/index.html", studies=overview.list_studies(db()))


@bp.get("/<slug>")
@login_required
@permission_required("view_study")
def detail(slug: str):
    study = db().exec(select(Study).where(Study.slug == slug)).first()
    if study is None:
        abort(404)
    summary = overview.summarise(db(), study)
    protocol, problem = None, None
    if summary.current_version is not None:
        try:
            protocol = parsed_version(summary.current_version)
        except ProtocolError as exc:
            # A stored version that no longer validates (e.g. after a schema change) must still
            # be inspectable: show the problem rather than a 500.
            problem = str(exc)
    return render_template(
        "studies/detail.html",
        summary=summary,
        protocol=protocol,
        instruction_hashes=_instruction_hashes(protocol) if protocol else {},
        problem=problem,
        versions=overview.versions_of(db(), study.id),
    )


def _instruction_hashes(protocol: Protocol) -> dict[str, str]:
    """sha256 of each assistant arm's system prompt or constitution, by arm key."""
    hashes = {}
    for arm in protocol.model.arms:
        if arm.assistant is not None:
            referenced = protocol.referenced_files.get(normalise(arm.assistant.instructions_file))
            hashes[arm.key] = referenced.sha256 if referenced else ""
    return hashes
