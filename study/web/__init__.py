"""The Flask app factory. Blueprints are thin: they parse requests and call domain modules."""

from __future__ import annotations

from flask import Flask, abort, request
from flask_wtf import CSRFProtect
from sqlalchemy.engine import Engine

from ..clock import Clock, SystemClock
from ..config import Settings
from ..db import make_engine
from .context import Services, close_request_session


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
) -> Flask:
    """Build the study server.

    `settings` default to the environment (`Settings.from_env()`); tests pass their own, and an
    `engine` when they want the app on a database they prepared, and a `clock` to control time.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        TESTING=settings.env == "test",
        # Seconds the chat waits between bytes of an assistant's reply (tests shorten it).
        FLOURISH_ASSISTANT_TIMEOUT=settings.assistant_timeout_seconds,
    )
    app.extensions["flourish"] = Services(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        clock=clock or SystemClock(),
    )
    CSRFProtect(app)
    app.teardown_appcontext(close_request_session)

    from . import (
        api,
        auth,
        chat,
        health,
        participants,
        participate,
        studies,
        surveys,
        twilio_hooks,
    )

    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(studies.bp)
    app.register_blueprint(participants.bp)
    app.register_blueprint(participate.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(surveys.bp)
    twilio_hooks.init_app(app)  # CSRF-exempt via extensions["csrf"]: Twilio signs these
    api.init_app(app)  # /api/v1: CSRF-exempt, authenticated by bearer API keys instead
    from dashboards.app import init_app as init_dashboards  # /dashboard/: its own guard and CSP

    init_dashboards(app)
    app.before_request(_refuse_nul)
    app.after_request(_security_headers)
    return app


def _refuse_nul():
    # No browser puts NUL in a URL or a form field, and PostgreSQL's text cannot hold it: refuse
    # it here (400) rather than fail with a 500 at the first query. Twilio's webhooks clean their
    # own fields, and the API's JSON is checked by its schema.
    if request.blueprint in ("twilio_hooks", "api"):
        return None
    fields = [*request.args.lists(), *request.form.lists()]
    texts = [request.path, *(key for key, _ in fields), *(v for _, vs in fields for v in vs)]
    if any("\x00" in text for text in texts):
        abort(400)
    return None


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    )
    return response
