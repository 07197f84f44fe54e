"""Per-app services and the per-request database session."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, g
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..clock import Clock, SystemClock
from ..config import Settings
from ..pii import PiiVault


@dataclass(frozen=True)
class Services:
    """What the app was built with; kept on `app.extensions['flourish']`, never in a global."""

    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)

    @property
    def pii(self) -> PiiVault:
        """Encrypts and decrypts personal data with `FLOURISH_PII_KEY`."""
        return PiiVault(self.settings.pii_key)


def services() -> Services:
    return current_app.extensions["flourish"]


def db() -> Session:
    """The request's session; committed explicitly by the view, closed at teardown."""
    if "db_session" not in g:
        g.db_session = Session(services().engine, expire_on_commit=False)
    return g.db_session


def close_request_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
