"""Twilio's webhooks: inbound SMS (`POST /twilio/sms`) and delivery reports
(`POST /twilio/status`).

Both are authenticated by Twilio's signature rather than a session or CSRF token: every request
must carry an `X-Twilio-Signature` that Twilio computed with our auth token over the URL it
called and the posted parameters. That URL is the public one (`FLOURISH_PUBLIC_URL` + path +
query), never `request.url`, which says `http://` and an internal host behind a TLS-terminating
proxy. A missing or wrong signature gets 403 and nothing is stored. The work itself is done by
`study.channels`; this module only checks, parses and answers.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

import consent
import study.sms_surveys  # noqa: F401  (registers the SMS survey reply handler)
from study.channels import apply_status, receive_sms

from .context import db, services

log = logging.getLogger("flourish.web.twilio")
bp = Blueprint("twilio_hooks", __name__, url_prefix="/twilio")

# Twilio's ids are two letters and 32 hex digits; anything else (over-long, NUL) is not Twilio's,
# and a NUL character cannot even be looked up in PostgreSQL, so it is refused before any query.
_PROVIDER_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def init_app(app: Flask) -> None:
    """Register the webhooks, exempt from CSRF (Twilio signs them instead)."""
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)


@bp.before_request
def _verify_signature() -> None:
    settings = services().settings
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or not signature:
        log.warning("Twilio webhook %s refused: no signature or no auth token", request.path)
        abort(403)
    if not RequestValidator(settings.twilio_auth_token).validate(
        public_url(), request.form, signature
    ):
        log.warning("Twilio webhook %s refused: signature does not match", request.path)
        abort(403)


def public_url() -> str:
    """The URL Twilio called: the public base, the path and the raw query string."""
    query = request.query_string.decode("latin-1")
    url = services().settings.public_url + request.path
    return f"{url}?{query}" if query else url


def _message_sid() -> str:
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    if not _PROVIDER_ID.fullmatch(sid):
        abort(400)
    return sid


@bp.post("/sms")
def inbound_sms():
    sid = _message_sid()
    sender = request.form.get("From", "")
    if not sender or "\x00" in sender:
        abort(400)
    session = db()
    result = receive_sms(
        session,
        services().pii,
        provider_message_id=sid,
        sender=sender,
        # No phone sends NUL; PostgreSQL text cannot hold it.
        body=request.form.get("Body", "").replace("\x00", ""),
        now=services().clock.now(),
    )
    session.commit()
    if result.needs_purge:
        consent.purge_erased_residues(services().engine)
    twiml = MessagingResponse()
    if result.reply:
        twiml.message(result.reply)
    return Response(str(twiml), mimetype="application/xml")


@bp.post("/status")
def delivery_status():
    sid = _message_sid()
    status = request.form.get("MessageStatus") or request.form.get("SmsStatus") or ""
    session = db()
    apply_status(
        session,
        provider_message_id=sid,
        provider_status=status,
        error_code=request.form.get("ErrorCode") or None,
        attempt_key=request.args.get("attempt") or None,
        now=services().clock.now(),
    )
    session.commit()
    # Twilio only needs a 2xx; an unknown message is acknowledged so it is not retried.
    return Response("", status=200)
