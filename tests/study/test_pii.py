"""Contact details are stored encrypted and found again by a keyed hash, never in plaintext."""

import pytest
from cryptography.fernet import Fernet

from study.pii import PiiError, PiiVault, normalise_contact


@pytest.fixture
def vault():
    return PiiVault(Fernet.generate_key().decode())


def test_values_round_trip_and_the_ciphertext_does_not_contain_them(vault):
    token = vault.encrypt("+447700900123")
    assert b"7700900123" not in token
    assert vault.decrypt(token) == "+447700900123"


def test_another_key_cannot_decrypt(vault):
    other = PiiVault(Fernet.generate_key().decode())
    with pytest.raises(PiiError, match="cannot be decrypted"):
        other.decrypt(vault.encrypt("secret@example.org"))


def test_lookup_hashes_match_across_spellings_and_depend_on_the_key(vault):
    assert vault.lookup_hash("sms", "+44 7700 900123") == vault.lookup_hash("sms", "00447700900123")
    assert vault.lookup_hash("email", "Ann@Example.ORG") == vault.lookup_hash(
        "email", "Ann@example.org"
    )
    other = PiiVault(Fernet.generate_key().decode())
    assert vault.lookup_hash("sms", "+447700900123") != other.lookup_hash("sms", "+447700900123")


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("sms", "07700 900123", "international form"),
        ("sms", "+12", "international form"),
        ("email", "not-an-address", "not an email address"),
        ("fax", "123", "unknown contact kind"),
    ],
)
def test_malformed_contact_details_are_refused(kind, value, message):
    with pytest.raises(PiiError, match=message):
        normalise_contact(kind, value)
