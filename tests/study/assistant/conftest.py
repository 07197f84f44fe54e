"""Fixtures for the assistant: the fake OpenAI-compatible endpoint and the example study
pointed at it."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from study.pii import PiiVault
from study.protocol import Protocol
from study.protocol.registry import register_protocol
from tests.fakes.openai_server import openai_server  # noqa: F401  (a fixture, used by name)
from tests.study.assistant.enrolled import copy_examples, protocol_using


@pytest.fixture
def vault() -> PiiVault:
    return PiiVault(Fernet.generate_key().decode())


@pytest.fixture
def protocol(tmp_path, openai_server) -> Protocol:  # noqa: F811
    return protocol_using(copy_examples(tmp_path), openai_server.base_url)


@pytest.fixture
def trial(session, protocol) -> Protocol:
    """The example study, its assistants at the fake endpoint, registered on `session`."""
    register_protocol(session, protocol, actor="test")
    session.commit()
    return protocol
