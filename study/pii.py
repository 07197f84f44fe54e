"""Personal data at rest: encryption of contact details, signatures and chat content.

Values are encrypted with Fernet under `FLOURISH_PII_KEY`. Lookups (which participant sent this
SMS?) use a keyed hash of the normalised value, derived from the same key, so the database holds
no plaintext and no unkeyed hash that could be reversed by brute force over phone numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken

_PHONE_CHARS = re.compile(r"[\s().\-]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class PiiError(ValueError):
    """A contact detail is malformed, or a stored value cannot be decrypted with this key."""


class PiiVault:
    """Encrypts and decrypts personal data with one key; build one per app or CLI run."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())
        self._lookup_key = hashlib.sha256(b"flourish-lookup:" + key.encode()).digest()

    def encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken as exc:
            raise PiiError("stored value cannot be decrypted with FLOURISH_PII_KEY") from exc

    def lookup_hash(self, kind: str, value: str) -> str:
        """A keyed hash of the normalised contact detail, for equality lookups only."""
        normalised = normalise_contact(kind, value)
        return hmac.new(self._lookup_key, f"{kind}:{normalised}".encode(), "sha256").hexdigest()


def normalise_contact(kind: str, value: str) -> str:
    """The canonical form of a phone number (E.164) or email address; PiiError if malformed.

    Phone numbers must be given in international form (+ and country code): guessing a country
    from a local number would silently text the wrong person.
    """
    if kind == "sms":
        phone = _PHONE_CHARS.sub("", value.strip())
        if phone.startswith("00"):
            phone = "+" + phone[2:]
        if not _E164.match(phone):
            raise PiiError(
                f"{value!r} is not a phone number in international form, e.g. +44 7700 900123"
            )
        return phone
    if kind == "email":
        email = value.strip()
        if not _EMAIL.match(email):
            raise PiiError(f"{value!r} is not an email address")
        local, _, domain = email.rpartition("@")
        return f"{local}@{domain.lower()}"
    raise PiiError(f"unknown contact kind {kind!r}; use 'sms' or 'email'")
