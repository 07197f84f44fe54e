"""Redaction of phone numbers and email addresses from chat text, and what it leaves alone."""

from __future__ import annotations

import pytest

from study.assistant.redaction import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # international, with + or 00
        ("call me on +44 7700 900123 please", "call me on [phone] please"),
        ("+447700900123", "[phone]"),
        ("+1 (555) 123-4567", "[phone]"),
        ("+44 (0) 20 7946 0958", "[phone]"),
        ("+33 6 12 34 56 78", "[phone]"),
        ("+49 30 1234567", "[phone]"),
        ("+61 2 9876 5432", "[phone]"),
        ("+91 98765 43210", "[phone]"),
        ("0033 6 12 34 56 78", "[phone]"),
        ("0044 7700 900123", "[phone]"),
        ("tel:+447700900123", "tel:[phone]"),
        # national, with a trunk prefix 0
        ("07700 900461.", "[phone]."),
        ("07700900461", "[phone]"),
        ("(020) 7946 0958", "[phone]"),
        ("020-7946-0958", "[phone]"),
        ("0161 496 0000", "[phone]"),
        ("06 12 34 56 78", "[phone]"),
        ("06.12.34.56.78", "[phone]"),
        ("030 1234567", "[phone]"),
        ("(02) 9876 5432", "[phone]"),
        # North American
        ("555-234-5678", "[phone]"),
        ("(555) 234 5678", "[phone]"),
        ("(555)234-5678", "[phone]"),
        ("555.234.5678", "[phone]"),
        ("1-800-555-0199", "[phone]"),
        ("5558675309", "[phone]"),
        ("15558675309", "[phone]"),
        # in sentences, several, next to other numbers
        ("Ring 07700 900461 or +33 6 12 34 56 78!", "Ring [phone] or [phone]!"),
        ("at 5 07700 900461", "at 5 [phone]"),
        ("number:07700 900461", "number:[phone]"),
        ("(07700 900461)", "([phone])"),
    ],
)
def test_phone_numbers_are_replaced(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ada@example.org", "write to [email]"),
        ("ada.lovelace+chat@mail.example.co.uk, thanks", "[email], thanks"),
        ("<o'brien@example.ie>", "<[email]>"),
        ("ADA_L-1@Example.COM.", "[email]."),
        ("a@b.io and c@d.io", "[email] and [email]"),
        ("mail a@b.io or call 0161 496 0000", "mail [email] or call [phone]"),
    ],
)
def test_email_addresses_are_replaced(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I did it 5 times this week",
        "I walked 10000 steps",
        "about 1 000 000 people",
        "1,000,000",
        "on 2026-03-02 I felt better",
        "on 02.03.2026 at 10:30",
        "on 12/03/2026",
        "from 2 to 3 March 2026",
        "scored 12 of 25",
        "in 2026",
        "pi is 3.14159265",
        "10-20 minutes",
        "between 9.30 and 17.45",
        "version 1.2.3",
        "ISBN 978-3-16-148410-0",
        "code 0000 and PIN 012345",
        "order 01234567",
        "1 000 000 000 euros",
        "my score went from 7.5 to 8.25",
        "22:00-06:00 is when I sleep",
        "the year 1999 and 2000",
        "555-123-4567",  # not a North American number: exchanges never start with 1
        "user@localhost",  # no domain: nothing to contact
        "an @ sign and example.org alone",
    ],
)
def test_ordinary_numbers_dates_and_text_are_left_alone(text):
    assert redact(text) == text


def test_empty_text_and_text_without_numbers():
    assert redact("") == ""
    assert redact("Nothing to hide here.") == "Nothing to hide here."


def test_long_runs_of_digits_are_not_phone_numbers():
    # Possessive quantifiers keep these linear; a backtracking pattern would hang here.
    for text in ("1" * 20_000 + "x", "1 " * 10_000 + "x", "0-" * 10_000, "a" * 20_000 + "@"):
        assert redact(text) == text
