"""Answering an SMS survey the way a person does: read the question, text a number back.

The person reads the allowed range off each question (`Reply 0-5 (...)`, `Reply 1-7 in steps
of 0.5`, or wording that names both ends, `0 (not at all) to 10 (extremely)`), and now and then
mistypes ("maybe", two numbers, a number out of range) before answering properly. Only a reply
that moves the conversation on (the next question or the thank-you) acknowledges an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .actions import JourneyError, Phone
from .population import Persona

THANKS = "Thank you, that was the last question"
SORRY = "Sorry, please reply with one number"
CLOSED = "has closed"
_RANGE = re.compile(r"Reply (-?\d+(?:\.\d+)?)-(-?\d+(?:\.\d+)?)(?: in steps of (\d+(?:\.\d+)?))?")
_ENDS = re.compile(r"(-?\d+(?:\.\d+)?)\s*\([^)]*\)\s*to\s*(-?\d+(?:\.\d+)?)")
_NUMBERED = re.compile(r"^\d+/\d+ ")
MISTAKES = ("maybe", "3 or 4", "lots", "99", "-1")


@dataclass
class Conversation:
    status: str = "unfinished"  # "completed", "closed", "unfinished"
    values: list[float] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # what was sent, the reply


def allowed_values(question: str) -> list[float]:
    """The answers a question allows, read off its text."""
    found = list(_RANGE.finditer(question))
    if found:
        low, high, step = found[-1].groups()
        low, high, step = float(low), float(high), float(step or 1)
    else:
        ends = _ENDS.search(question)
        if ends is None:
            raise JourneyError(f"no answer range in the SMS question {question!r}")
        low, high, step = float(ends.group(1)), float(ends.group(2)), 1.0
    count = round((high - low) / step)
    return [low + k * step for k in range(count + 1)]


def _text(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"


class SmsAnswerer:
    """Runs whole SMS conversations for personas through one `Phone`."""

    def __init__(self, phone: Phone, max_messages: int = 80) -> None:
        self.phone = phone
        self.max_messages = max_messages

    def converse(self, person: Persona, question: str) -> Conversation:
        """Answer from `question` (the one at the end of the invitation) to the end."""
        rng, result = person.rng, Conversation()
        for _ in range(self.max_messages):
            if rng.random() < person.invalid_sms:
                mistake = rng.choice(MISTAKES)
                if float(_try_number(mistake)) in allowed_values(question):
                    continue  # "-1" or "99" may be allowed on some scale: not a mistake there
                reply = self.phone.send(person.phone, mistake)
                result.invalid.append((mistake, reply))
                if CLOSED in reply:
                    result.status = "closed"
                    return result
                question = reply
                continue
            value = rng.choice(allowed_values(question))
            reply = self.phone.send(person.phone, _text(value))
            if CLOSED in reply:
                result.status = "closed"
                return result
            if reply.startswith(SORRY):
                # Another conversation of this person asked last and took the reply (see
                # docs/sms.md, "Routing"); it was re-asked, so nothing was acknowledged.
                question = reply
                continue
            if reply.startswith(THANKS):
                result.values.append(value)
                result.status = "completed"
                return result
            if not _NUMBERED.match(reply):
                result.status = "not understood"  # e.g. the conversation had already ended
                return result
            result.values.append(value)  # the conversation moved on: the answer is saved
            if not _is_question(reply):
                result.status = f"unanswerable question {reply[:80]!r}"
                return result
            question = reply
        return result


def _is_question(text: str) -> bool:
    try:
        allowed_values(text)
    except JourneyError:
        return False
    return True


def _try_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
