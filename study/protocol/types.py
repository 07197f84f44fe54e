"""Value types of the protocol language: durations, times of day, identifiers, localised text.

Each parser raises `ValueError` with a message written for the protocol's author; the loader
reports it against the line and field where the value was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, PlainSerializer, PlainValidator, StrictStr, WithJsonSchema

_UNITS = {"m": ("minutes", 60), "h": ("hours", 3600), "d": ("days", 86400), "w": ("weeks", 604800)}
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_DURATION_HELP = (
    "write a whole number followed by a unit: m (minutes), h (hours), d (days) or w (weeks), "
    "e.g. 30m, 48h, 7d, 12w"
)


@dataclass(frozen=True, order=False)
class Duration:
    """A length of time as the author wrote it (`7d`, `48h`), keeping the unit.

    The unit matters to the scheduler: days and weeks are calendar steps in the participant's
    local time (so a weekly survey stays at 19:00 across a DST change), minutes and hours are
    elapsed time.
    """

    amount: int
    unit: str

    @property
    def seconds(self) -> int:
        return self.amount * _UNITS[self.unit][1]

    @property
    def timedelta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def is_calendar(self) -> bool:
        """True for days and weeks, which are counted on the participant's calendar."""
        return self.unit in ("d", "w")

    @property
    def days(self) -> int:
        """Whole calendar days (for `d` and `w`); 0 for minute and hour durations."""
        return self.amount * (7 if self.unit == "w" else 1) if self.is_calendar else 0

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def __lt__(self, other: Duration) -> bool:
        return self.seconds < other.seconds

    def __le__(self, other: Duration) -> bool:
        return self.seconds <= other.seconds

    def __gt__(self, other: Duration) -> bool:
        return self.seconds > other.seconds

    def __ge__(self, other: Duration) -> bool:
        return self.seconds >= other.seconds


def parse_duration(value: Any) -> Duration:
    """`"48h"` -> Duration(48, "h"); anything else is a ValueError that says how to write one."""
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a duration: {_DURATION_HELP}")
    if isinstance(value, int):
        raise ValueError(f"{value} has no unit: {_DURATION_HELP}")
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a duration: {_DURATION_HELP}")
    return Duration(int(match.group(1)), match.group(2))


def parse_local_time(value: Any) -> time:
    """`"19:00"` -> time(19, 0): a wall-clock time in the participant's own time zone."""
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = re.match(r"^(\d{1,2}):(\d{2})$", value.strip())
        if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f'{value!r} is not a time of day: use 24-hour HH:MM, e.g. "19:00"')


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError(
            f"'{value}' is not an identifier: use lowercase letters, digits and underscores, "
            "starting with a letter"
        )
    if len(value) > 64:
        raise ValueError("an identifier may be at most 64 characters long")
    return value


def _instrument_id(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", value):
        raise ValueError(
            f"'{value}' is not an instrument id: use lowercase letters, digits and underscores"
        )
    return value


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", value) or len(value) > 64:
        raise ValueError(
            f"'{value}' is not a study slug: use up to 64 lowercase letters, digits and single "
            "hyphens, starting with a letter (e.g. assistant-flourishing-rct)"
        )
    return value


def _language(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*", value):
        raise ValueError(f"'{value}' is not a language code: use BCP 47, e.g. en, es, pt-BR")
    return value


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError(f"'{value}' is not an email address")
    return value


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", value):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    return value


def _env_name(value: str) -> str:
    if value.startswith(("sk-", "sk_")) or (len(value) > 30 and not value.isupper()):
        raise ValueError(
            "this looks like an API key itself: never put keys in a protocol; name the "
            "environment variable that holds it, e.g. FLOURISH_ARM_A_API_KEY"
        )
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
        raise ValueError(
            f"'{value}' is not an environment variable name: use capitals, digits and "
            "underscores, e.g. FLOURISH_ARM_A_API_KEY"
        )
    return value


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _relative_path(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValueError("must be a path relative to the protocol file, not an absolute path")
    return value


class _Localized:
    """Marks a field as human-facing text given per language (checked against study.languages)."""


def _localized(value: dict) -> dict:
    if not value:
        raise ValueError('give the text in at least one language, e.g. {en: "..."}')
    for language, text in value.items():
        _language(language)
        _nonblank(text)
    return value


_duration_schema = WithJsonSchema({"type": "string", "pattern": r"^\d+[mhdw]$"})
DurationField = Annotated[
    Duration, PlainValidator(parse_duration), PlainSerializer(str), _duration_schema
]
LocalTime = Annotated[
    time,
    PlainValidator(parse_local_time),
    PlainSerializer(lambda t: t.strftime("%H:%M")),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}$"}),
]
Identifier = Annotated[StrictStr, AfterValidator(_identifier)]
InstrumentId = Annotated[StrictStr, AfterValidator(_instrument_id)]
Slug = Annotated[StrictStr, AfterValidator(_slug)]
LanguageCode = Annotated[StrictStr, AfterValidator(_language)]
Email = Annotated[StrictStr, AfterValidator(_email)]
HttpUrl = Annotated[StrictStr, AfterValidator(_http_url)]
EnvVarName = Annotated[StrictStr, AfterValidator(_env_name)]
Text = Annotated[StrictStr, AfterValidator(_nonblank)]
RelativePath = Annotated[StrictStr, AfterValidator(_relative_path)]
LocalizedText = Annotated[dict[StrictStr, StrictStr], AfterValidator(_localized), _Localized()]


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return value


def _answer(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"{value!r} is not an answer: use true/false (yes/no) or an option value")


Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]
Answer = Annotated[
    bool | str, PlainValidator(_answer), WithJsonSchema({"type": ["boolean", "string"]})
]
