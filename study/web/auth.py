"""Researcher sign-in: Flask-Login wiring, the login and logout pages, permission checks.

The session cookie carries the researcher's id and a marker derived from their password hash
and active flag. The user loader recomputes the marker on every request, so changing the
password or deactivating the account ends every session of that account at once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_login import login_required as login_required
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from .. import accounts, audit
from ..models import Researcher
from .context import db, services

SESSION_LIFETIME = timedelta(hours=8)
LOGIN_ERROR = "Email or password is incorrect"

bp = Blueprint("auth", __name__)


class SignedInResearcher:
    """The researcher behind a request, as Flask-Login's `current_user` sees them.

    A snapshot of the account's public fields, never the ORM row, so templates cannot lazily
    touch the database or the password hash.
    """

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, researcher: Researcher, marker: str) -> None:
        self.id: int = researcher.id  # type: ignore[assignment]
        self.email = researcher.email
        self.name = researcher.name
        self.role = researcher.role
        self._marker = marker

    def get_id(self) -> str:
        return f"{self.id}:{self._marker}"

    def can(self, permission: str) -> bool:
        """Whether this researcher's role holds `permission`."""
        return accounts.has_permission(self.role, permission)

    @property
    def actor(self) -> str:
        return f"researcher:{self.email}"


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[DataRequired("Enter your email address."), Length(max=320)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


def init_app(app: Flask) -> None:
    """Install sign-in on `app`: Flask-Login, session lifetime and the `auth` blueprint."""
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    manager = LoginManager()
    manager.session_protection = "basic"
    manager.user_loader(_load_researcher)
    manager.unauthorized_handler(_unauthorized)
    manager.init_app(app)
    app.register_blueprint(bp)


def session_marker(researcher: Researcher) -> str:
    """A short keyed digest of the password hash and active flag; changes when either does."""
    key = current_app.config["SECRET_KEY"].encode()
    message = f"{researcher.password_hash}|{researcher.is_active}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _load_researcher(user_id: str) -> SignedInResearcher | None:
    raw_id, _, marker = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    researcher = db().get(Researcher, int(raw_id))
    if researcher is None or not researcher.is_active:
        return None
    expected = session_marker(researcher)
    if not hmac.compare_digest(marker, expected):
        return None
    return SignedInResearcher(researcher, expected)


def _wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > 0


def _unauthorized():
    if _wants_json():
        return jsonify(error="authentication required"), 401
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


def permission_required(permission: str) -> Callable:
    """Require a signed-in researcher whose role holds `permission` (403 otherwise)."""
    accounts.has_permission("admin", permission)  # fail at import time on a misspelt name

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not current_user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def current_actor() -> str:
    """How the audit log names whoever makes the current request."""
    if current_user and current_user.is_authenticated:
        return current_user.actor
    return "anonymous"


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None; refuses open redirects."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read "/\\evil.example" as "//evil.example"; control characters hide such tricks.
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _home() -> str:
    return url_for("studies.index")


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(_home())
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or _home())
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        session_db = db()
        researcher = accounts.authenticate(
            session_db,
            form.email.data or "",
            form.password.data or "",
            services().clock.now(),
            origin=request.remote_addr or "",
        )
        # Failed attempts are committed too: they are what lockout counts.
        session_db.commit()
        if researcher is not None:
            # A fresh session on sign-in, so a session planted before it (fixation) is worthless.
            session.clear()
            session.permanent = True
            login_user(SignedInResearcher(researcher, session_marker(researcher)))
            return redirect(target or _home())
        failed = True
    return render_template("auth/login.html", form=form, failed=failed, error=LOGIN_ERROR)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        session_db = db()
        audit.record(
            session_db,
            current_user.actor,
            "logout",
            entity_type="researcher",
            entity_id=current_user.id,
            at=services().clock.now(),
        )
        session_db.commit()
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))
