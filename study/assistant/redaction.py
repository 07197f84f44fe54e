"""Redaction of phone numbers and email addresses from chat text before it is stored.

`redact(text)` replaces each email address with `[email]` and each phone number with `[phone]`.
Phone numbers are recognised in these forms (separators: one space, `-` or `.` between digit
groups; parentheses around an area code):

- international: `+` or `00` and a country code, 8 to 15 digits in all (`+44 7700 900123`,
  `+1 (555) 123-4567`, `0033 6 12 34 56 78`);
- national with a trunk prefix `0`, 9 to 12 digits (`07700 900461`, `(020) 7946 0958`,
  `06 12 34 56 78`, `030 1234567`);
- North American, 10 digits grouped 3-3-4, optionally after a `1` (`555-234-5678`,
  `(555) 234 5678`, `1-800-555-0199`), or written without separators (`5558675309`); the area
  code and the exchange start with 2-9, as they must.

Ordinary numbers are left alone: counts (`5 times`, `1 000 000`), dates (`2026-03-02`,
`02.03.2026`), times, scores and years have too few digits, no trunk prefix or country code,
or a date's shape. A number written right after a phone number with a single space
(`07700 900461 5 times`) may be taken into the placeholder. Deliberately not caught: phone
numbers spelt out in words, 7-digit local numbers without an area code, and addresses
obfuscated as `name at example dot org`. The content is encrypted at rest and stored only with
consent, so redaction is a second line of defence, not the only one.
"""

from __future__ import annotations

import re

EMAIL_PLACEHOLDER = "[email]"
PHONE_PLACEHOLDER = "[phone]"

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)

# A run of digit groups joined by single separators, optionally led by `+` and with
# parenthesised groups. Possessive quantifiers keep matching linear on long digit runs.
_CANDIDATE = re.compile(
    r"(?<![\w+.,/-])"  # not the tail of a word, decimal, fraction or longer number
    r"(?:\+\s?)?"
    r"(?:\(\d++\)[ .-]?\d++|\d++)"
    r"(?:[ .-]?\(\d++\)[ .-]?\d++|[ .-]\d++)*+"
    r"(?![\w/]|[.,-]\d)"
)
_GROUP = re.compile(r"\(\d+\)|\d+")
# No phone number is written in more digit groups than this (`+1 (555) 123 45 67` has six).
_MAX_GROUPS = 8
_DATE_SHAPES = {(4, 2, 2), (2, 2, 4), (1, 2, 4), (2, 1, 4), (1, 1, 4), (4, 1, 2), (4, 2, 1)}
_NANP_GROUPS = re.compile(r"^(?:1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}$")


def redact(text: str) -> str:
    """`text` with email addresses and phone numbers replaced by `[email]` and `[phone]`."""
    text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    return _CANDIDATE.sub(_replace_phones, text)


def _replace_phones(match: re.Match) -> str:
    """The run with each phone number in it replaced, longest first from the left.

    A run may hold more than a phone number ("at 5 07700 900461"), so sub-runs of whole digit
    groups are tried too; a leading `+` only belongs to a sub-run that starts the run.
    """
    run = match.group(0)
    groups = list(_GROUP.finditer(run))
    starts = [0] + [group.start() for group in groups[1:]]
    out: list[str] = []
    done = 0
    i = 0
    while i < len(groups):
        for j in range(min(len(groups), i + _MAX_GROUPS), i, -1):
            if _is_phone(run[starts[i] : groups[j - 1].end()]):
                out.append(run[done : starts[i]] + PHONE_PLACEHOLDER)
                done = groups[j - 1].end()
                i = j
                break
        else:
            i += 1
    out.append(run[done:])
    return "".join(out)


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    groups = tuple(len(group) for group in re.findall(r"\d+", candidate))
    if candidate.startswith("+"):
        return 8 <= len(digits) <= 15 and digits[0] != "0"
    if digits.startswith("00"):
        return 10 <= len(digits) <= 17 and digits[2] != "0"
    if len(groups) == 3 and groups in _DATE_SHAPES and "(" not in candidate:
        return False
    if digits.startswith("0"):
        return 9 <= len(digits) <= 12
    if _NANP_GROUPS.match(candidate):
        return _nanp(digits[-10:])
    # Ten digits written without separators, as North American numbers often are.
    if len(groups) == 1 and len(digits) in (10, 11):
        national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        return len(national) == 10 and _nanp(national)
    return False


def _nanp(national: str) -> bool:
    """Whether ten digits can be a North American number: area code and exchange start 2-9."""
    return national[0] in "23456789" and national[3] in "23456789"
