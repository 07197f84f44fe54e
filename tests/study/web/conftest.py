"""Fixtures for the researcher web pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from study.protocol import load_protocol
from study.protocol.registry import register_protocol

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"


@pytest.fixture
def example_study(app):
    """The example protocol registered on the app's database; returns the `Study`."""
    with Session(app.extensions["flourish"].engine, expire_on_commit=False) as session:
        registration = register_protocol(session, load_protocol(EXAMPLE), actor="test")
        session.commit()
        return registration.study
