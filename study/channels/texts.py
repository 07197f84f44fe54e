"""What participants read: invitations, reminders and SMS keyword replies.

Every English sentence lives in `STRINGS`; a translation is another language code with the same
keys (missing keys fall back to English). SMS texts aim at one segment (160 GSM-7 characters,
see `sms_segments`): when the full sentence with its link does not fit, the closing time is
left out, never the link or the opt-out line.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from study.protocol import Protocol

from .gsm import sms_segments

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
        "months": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec",
        "when": "{weekday} {day} {month}, {time}",
        "when.short": "{weekday} {time}",
        "sms.invitation": "{sender}: your survey is open until {close}: {link} "
        "Reply STOP to opt out",
        "sms.invitation.short": "{sender}: your survey is ready: {link} Reply STOP to opt out",
        "sms.reminder": "{sender}: reminder, your survey closes {close}: {link} "
        "Reply STOP to opt out",
        "sms.reminder.short": "{sender}: reminder, your survey is waiting: {link} "
        "Reply STOP to opt out",
        "email.invitation.subject": "{title}: your questionnaire is ready",
        "email.reminder.subject": "Reminder: your {title} questionnaire closes {close}",
        "email.invitation.opening": "It is time for your next questionnaire in the study "
        '"{title}".',
        "email.reminder.opening": "A reminder: your questionnaire in the study "
        '"{title}" is still waiting for you.',
        "email.body": "Hello,\n\n{opening}\n\nOpen it here:\n{link}\n\n"
        "Please answer by {close} ({zone} time).\n\n"
        "If you no longer want to take part, you can withdraw at any time, without giving a "
        "reason:\n{withdraw_link}\n\n"
        "Questions? Contact {contact}.\n\n-- \n{signature}\n",
        "sms.help": "{sender}: {title}. Questions? Contact {contact}. Reply STOP to stop texts, "
        "WITHDRAW to leave the study.",
        "sms.help.unknown": "This number sends messages for a research study. Reply STOP to "
        "stop texts.",
        "sms.withdrawn": "{sender}: you have left the study. We will not contact you about it "
        "again. Thank you for taking part.",
        "sms.withdraw.unknown": "We could not find a study participant with this number. To "
        "leave a study, use the link in its emails or contact the study team.",
        "sms.not_understood": "Sorry, we did not understand your message. Reply HELP for help.",
    },
}
DEFAULT_LANGUAGE = "en"
PURPOSES = ("invitation", "reminder")
# A window shorter than this is named by weekday alone in an SMS ("Tue 18:00").
SHORT_DATE_SPAN = timedelta(days=6)


def text(language: str, key: str, **values: str) -> str:
    """The sentence `key` in `language` (English when it has no translation), filled in."""
    table = STRINGS.get(language) or STRINGS.get(language.split("-")[0], {})
    template = table.get(key) or STRINGS[DEFAULT_LANGUAGE][key]
    return template.format(**values)


def local_time(
    instant: datetime, timezone: str, language: str = DEFAULT_LANGUAGE, *, short: bool = False
) -> str:
    """An instant as the participant reads it in their zone: `Tue 3 Mar, 18:00`, or with
    `short` (for SMS, when the week makes the day plain) `Tue 18:00`."""
    local = instant.astimezone(_zone(timezone))
    return text(
        language,
        "when.short" if short else "when",
        weekday=text(language, "weekdays").split()[local.weekday()],
        day=str(local.day),
        month=text(language, "months").split()[local.month - 1],
        time=local.strftime("%H:%M"),
    )


def render_invitation(
    occasion,
    participant,
    protocol: Protocol,
    link: str,
    purpose: str = "invitation",
    *,
    channel: str | None = None,
    withdraw_link: str | None = None,
) -> tuple[str | None, str]:
    """The `(subject, body)` of an invitation or reminder for one occasion.

    `channel` is `sms` (subject None, one segment where possible) or `email` (defaults to the
    participant's preferred channel, and to `sms` for `both`). `withdraw_link` defaults to the
    portal, `FLOURISH_PUBLIC_URL/p/`, derived from the survey link's `/s/<token>`.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r}: use one of {', '.join(PURPOSES)}")
    channel = channel or (
        participant.preferred_channel
        if participant.preferred_channel in ("sms", "email")
        else "sms"
    )
    language = participant.language or DEFAULT_LANGUAGE
    close = local_time(occasion.closes_at, participant.timezone, language)
    if channel == "sms":
        within_week = occasion.closes_at - occasion.due_at < SHORT_DATE_SPAN
        sms_close = local_time(
            occasion.closes_at, participant.timezone, language, short=within_week
        )
        return None, _sms(language, purpose, sms_sender(protocol), sms_close, link)
    if channel != "email":
        raise ValueError(f"channel {channel!r}: use sms or email")
    study = protocol.model.study
    values = {"title": study.title_for_participants(language), "close": close, "link": link}
    subject = text(language, f"email.{purpose}.subject", **values)
    body = text(
        language,
        "email.body",
        opening=text(language, f"email.{purpose}.opening", **values),
        link=link,
        close=close,
        zone=participant.timezone,
        withdraw_link=withdraw_link or portal_link(link),
        contact=contact_line(protocol),
        signature=email_signature(protocol),
    )
    return subject, body


def _sms(language: str, purpose: str, sender: str, close: str, link: str) -> str:
    full = text(language, f"sms.{purpose}", sender=sender, close=close, link=link)
    if sms_segments(full) == 1:
        return full
    return text(language, f"sms.{purpose}.short", sender=sender, link=link)


def sms_sender(protocol: Protocol) -> str:
    """How SMS texts name the study: the protocol's SMS sender, else the study's slug."""
    sms = protocol.model.channels.sms
    return sms.sender if sms is not None else protocol.model.study.slug


def email_signature(protocol: Protocol) -> str:
    email = protocol.model.channels.email
    return email.from_name if email is not None else protocol.model.study.contact.name


def contact_line(protocol: Protocol) -> str:
    """The study contact as one phrase: `Name, email[, phone]`."""
    contact = protocol.model.study.contact
    parts = [contact.name, contact.email]
    if contact.phone:
        parts.append(contact.phone)
    return ", ".join(parts)


def portal_link(survey_link: str) -> str:
    """The participant portal (`/p/`) next to a survey link (`.../s/<token>`)."""
    base, marker, _ = survey_link.rpartition("/s/")
    return f"{base}/p/" if marker else survey_link.rstrip("/") + "/p/"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
