"""Two-way SMS surveys: an occasion whose instruments are all SMS-suitable, invited by SMS, is
answered one item per text message.

    from study import sms_surveys
    sms_surveys.install()       # offer replies to the conversation (idempotent; done on import)

The dispatcher calls `start_or_resume` while it prepares an SMS invitation or reminder; the
inbound SMS webhook reaches `answer` through `study.channels.register_inbound_handler`, after
the carrier keywords (STOP, START, HELP, WITHDRAW), which always come first. See docs/sms.md,
"SMS surveys".
"""

from __future__ import annotations

from study.channels import register_inbound_handler, unregister_inbound_handler

from .conversation import (
    DEFAULT_POLICY,
    ConversationPolicy,
    answer,
    expire_conversations,
    sms_instruments,
    start_or_resume,
)
from .prompts import allowed_answers, ask, read_answer, reask

__all__ = [
    "DEFAULT_POLICY",
    "ConversationPolicy",
    "allowed_answers",
    "answer",
    "ask",
    "expire_conversations",
    "install",
    "read_answer",
    "reask",
    "sms_instruments",
    "start_or_resume",
    "uninstall",
]


def install() -> None:
    """Register `answer` as an inbound SMS handler (once)."""
    register_inbound_handler(answer)


def uninstall() -> None:
    unregister_inbound_handler(answer)


install()
