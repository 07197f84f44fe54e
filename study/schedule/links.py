"""Survey links: signed, unguessable, one per occasion (and a fresh one per message sent).

A link is `FLOURISH_PUBLIC_URL/s/<token>`. The token carries the occasion id and a random nonce,
signed with `FLOURISH_SECRET_KEY` under the salt `survey-link` (itsdangerous), so nobody can
forge one or reach another occasion by changing a number, and two links to the same occasion
never look alike. The token itself never expires: whether the survey may still be answered is
the occasion's window, decided by the survey page, which can then say so kindly.

    link = survey_link(settings, occasion.id)
    verify_survey_token(settings, token)  # -> occasion id, or None for anything not ours

The dispatcher passes each send attempt's key as the nonce, so the text of a message identifies
the attempt that sent it (see `study.schedule.dispatch`).
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeSerializer

from study.config import Settings

SALT = "survey-link"
PATH_PREFIX = "/s/"
NONCE_BYTES = 9


def _serializer(settings: Settings) -> URLSafeSerializer:
    if not settings.secret_key:
        raise ValueError("survey links need FLOURISH_SECRET_KEY")
    return URLSafeSerializer(settings.secret_key, salt=SALT)


def new_nonce() -> str:
    """A random, URL-safe nonce (72 bits) for a token."""
    return secrets.token_urlsafe(NONCE_BYTES)


def survey_token(settings: Settings, occasion_id: int, *, nonce: str | None = None) -> str:
    """A signed token for `occasion_id`; random unless a `nonce` is given."""
    if not isinstance(occasion_id, int) or isinstance(occasion_id, bool) or occasion_id <= 0:
        raise ValueError(f"not an occasion id: {occasion_id!r}")
    return _serializer(settings).dumps([occasion_id, nonce or new_nonce()])


def survey_link(settings: Settings, occasion_id: int, *, nonce: str | None = None) -> str:
    """The participant-facing URL of the survey for `occasion_id`."""
    return f"{settings.public_url}{PATH_PREFIX}{survey_token(settings, occasion_id, nonce=nonce)}"


def verify_survey_token(settings: Settings, token: str) -> int | None:
    """The occasion id a token was made for, or None if it is forged, altered or malformed."""
    if not token or len(token) > 400:
        return None
    try:
        payload = _serializer(settings).loads(token)
    except BadSignature:
        return None
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], int)
        or isinstance(payload[0], bool)
        or payload[0] <= 0
        or not isinstance(payload[1], str)
    ):
        return None
    return payload[0]
