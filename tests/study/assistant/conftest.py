"""Fixtures for the assistant: the fake OpenAI-compatible endpoint."""

from tests.fakes.openai_server import openai_server  # noqa: F401  (a fixture, used by name)
