"""Channels: how messages reach participants (Twilio SMS, SMTP email, the console) and how
their replies and delivery reports come back.

    channels = build_channels(settings)            # {"sms": ..., "email": ...}
    subject, body = render_invitation(occasion, participant, protocol, link, "invitation",
                                      channel="sms")
    try:
        result = channels["sms"].send(number, body)       # SendResult(provider_message_id)
    except TransientSendError:  ...                       # retry later, with backoff
    except PermanentSendError as exc: ...     # give up; if exc.opted_out: opt_out_participant
    channels["sms"].fetch_status(sid)                     # "delivered", ... or None
    channels["sms"].find_sent(number, since=claimed_at, body=body)   # after a crash

    receive_sms(session, vault, provider_message_id=..., sender=..., body=..., now=...)
    apply_status(session, provider_message_id=..., provider_status="delivered", now=...)

Channels never touch the database; `inbound`, `status` and `optout` work in the caller's
transaction and never commit. See docs/sms.md.
"""

from .base import (
    Channel,
    PermanentSendError,
    SendError,
    SendResult,
    StatusLookupUnsupported,
    TransientSendError,
    mask_recipient,
)
from .build import INBOUND_PATH, STATUS_CALLBACK_PATH, build_channels
from .console import ConsoleChannel, ConsoleMessage
from .gsm import is_gsm7, sms_segments
from .inbound import (
    InboundContext,
    InboundResult,
    Reply,
    receive_sms,
    register_inbound_handler,
    unregister_inbound_handler,
)
from .optout import is_opted_out, opt_in, opt_out, opt_out_participant
from .smtp_email import SmtpEmail
from .status import StatusOutcome, apply_status
from .texts import render_invitation
from .twilio_sms import TwilioSms

__all__ = [
    "INBOUND_PATH",
    "STATUS_CALLBACK_PATH",
    "Channel",
    "ConsoleChannel",
    "ConsoleMessage",
    "InboundContext",
    "InboundResult",
    "PermanentSendError",
    "Reply",
    "SendError",
    "SendResult",
    "SmtpEmail",
    "StatusLookupUnsupported",
    "StatusOutcome",
    "TransientSendError",
    "TwilioSms",
    "apply_status",
    "build_channels",
    "is_gsm7",
    "is_opted_out",
    "mask_recipient",
    "opt_in",
    "opt_out",
    "opt_out_participant",
    "receive_sms",
    "register_inbound_handler",
    "render_invitation",
    "sms_segments",
    "unregister_inbound_handler",
]
