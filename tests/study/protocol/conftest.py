"""A minimal valid protocol, and helpers to break it and read the problems reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.protocol import Protocol, ProtocolError, parse_protocol

MINIMAL = """\
study:
  slug: mini-trial
  title: Mini trial
  description: A small trial used by the tests.
  principal_investigator: {name: Pat Investigator, email: pi@example.org}
  contact: {name: Study team, email: team@example.org}
  target_enrollment: 60
arms:
  - key: assisted
    name: Assisted
    description: Has an assistant.
    assistant:
      provider: openai-compatible
      base_url: http://127.0.0.1:8089/v1
      model: test-model
      api_key_env: MINI_API_KEY
      constitution_file: constitution.md
      temperature: 0.7
  - key: control
    name: Control
    description: No assistant.
    assistant: null
allocation:
  scheme: permuted_blocks
  ratio: {assisted: 1, control: 1}
  block_sizes: [2, 4]
  strata:
    - name: age_band
      question: age
      cut_points: [35]
eligibility:
  questions:
    - id: age
      text: {en: "How old are you?"}
      type: number
      eligible_if: {min: 18}
  ineligible_message: {en: "Sorry, you cannot take part."}
consent:
  document: consent.md
  version: "1"
  data_on_withdrawal: keep
instruments: [who5, swls]
schedule:
  baseline:
    kind: baseline
    instruments: [who5, swls]
  weekly:
    kind: wave
    instruments: [who5]
    every: 7d
    count: 4
    local_time: "19:00"
    window: 48h
    reminders: [24h]
channels:
  allowed: [email, web]
  default: email
  quiet_hours: {start: "21:30", end: "08:00"}
"""

SOURCE = "mini.yaml"


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} occurs {len(hits)} time(s)"
    return hits[occurrence - 1]


def edit(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence of `old`, so a test cannot silently edit nothing."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


@pytest.fixture
def protocol_dir(tmp_path) -> Path:
    """A folder holding the files MINIMAL refers to."""
    (tmp_path / "constitution.md").write_text("# Constitution\n\nSupport the participant.\n")
    (tmp_path / "consent.md").write_text("# Consent\n\nPlease read this.\n")
    return tmp_path


@pytest.fixture
def parse(protocol_dir):
    def parse_text(text: str) -> Protocol:
        return parse_protocol(text, SOURCE, protocol_dir)

    return parse_text


@pytest.fixture
def problems(protocol_dir):
    """The problems reported for `text`, as `FILE:LINE: field: message` strings."""

    def report(text: str) -> list[str]:
        with pytest.raises(ProtocolError) as caught:
            parse_protocol(text, SOURCE, protocol_dir)
        return [str(problem) for problem in caught.value.problems]

    return report


def only(problems: list[str], prefix: str) -> str:
    """The one problem starting with `prefix`, failing if there is not exactly one problem."""
    assert len(problems) == 1, problems
    assert problems[0].startswith(prefix), problems
    return problems[0]
