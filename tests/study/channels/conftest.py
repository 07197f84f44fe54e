"""Fixtures for channel tests that need the database: the example study and a participant
who can be texted."""

from __future__ import annotations

import pytest

from study.pii import PiiVault

from .people import enrolled_with_phone, register_example

PHONE = "+447700900123"


@pytest.fixture
def vault(settings) -> PiiVault:
    return PiiVault(settings.pii_key)


@pytest.fixture
def registration(session):
    return register_example(session)


@pytest.fixture
def texter(session, registration, vault, clock):
    """An enrolled participant whose SMS number is PHONE, with a pending invitation."""
    return enrolled_with_phone(
        session, registration, vault, code="P-SMS001", phone=PHONE, now=clock.now()
    )
