"""Protocols for the randomisation tests: the example trial and variants of its allocation."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from study.models import Participant
from study.protocol import Protocol, parse_protocol
from study.protocol.registry import register_protocol

EXAMPLES = Path(__file__).parents[3] / "examples" / "protocols"
EXAMPLE = EXAMPLES / "assistant-flourishing-rct.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text()
SEED = "test-allocation-seed-0123456789"

EXAMPLE_ALLOCATION = """\
allocation:
  scheme: permuted_blocks
  ratio: {instruct: 1, reflective: 1, control: 1}
  block_sizes: [3, 6]
  seed_env: FLOURISH_ALLOCATION_SEED
  strata:
    - name: wellbeing
      instrument: who5
      score: raw
      cut_points: [13]          # WHO-5 raw score < 13 indicates poor wellbeing
      labels: [low, high]
    - name: age_band
      question: age
      cut_points: [35]
      labels: [under_35, age_35_plus]
"""

STRATA = """\
  strata:
    - name: wellbeing
      instrument: who5
      score: raw
      cut_points: [13]
      labels: [low, high]
    - name: age_band
      question: age
      cut_points: [35]
      labels: [under_35, age_35_plus]
"""

CONTROL_ARM = """\
  - key: control
    name: No assistant
    description: Usual life; the same questionnaires on the same schedule.
    participant_description:
      en: >
        You are not given an assistant. Please carry on as usual; your answers to the same
        questionnaires are just as important to the study.
    assistant: null
"""

PREFERENCE_QUESTION = """\
    - id: preferred_assistant
      text: {en: "Would you rather use one assistant, or let chance decide?"}
      type: choice
      options:
        - {value: instruct, text: {en: "The instruction-following assistant"}}
        - {value: reflective, text: {en: "The reflective assistant"}}
        - {value: no_preference, text: {en: "Let chance decide"}}
"""


def edit(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence of `old`, so a variant cannot silently change nothing."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def example_variant(allocation: str | None = None, *, preference: bool = False) -> str:
    """The example protocol's text with another `allocation:` section and, optionally, the two
    assistant arms offered as preferences through a screening question."""
    text = EXAMPLE_TEXT
    if allocation is not None:
        text = edit(text, EXAMPLE_ALLOCATION, allocation)
    if preference:
        text = edit(
            text,
            "    name: Instruction-following assistant\n",
            "    name: Instruction-following assistant\n    preference: true\n",
        )
        text = edit(
            text,
            "    name: Reflective assistant (positive alignment)\n",
            "    name: Reflective assistant (positive alignment)\n    preference: true\n",
        )
        text = edit(
            text, "  ineligible_message:\n", PREFERENCE_QUESTION + "  ineligible_message:\n"
        )
    return text


def parse(text: str, name: str = "variant.yaml") -> Protocol:
    return parse_protocol(text, name, EXAMPLES)


@pytest.fixture(scope="session")
def example() -> Protocol:
    return parse(EXAMPLE_TEXT, str(EXAMPLE))


@pytest.fixture(scope="session")
def minimisation() -> Protocol:
    """The example trial allocated by minimisation over both factors, probability 0.8."""
    return parse(
        example_variant(
            "allocation:\n  scheme: minimisation\n"
            "  ratio: {instruct: 1, reflective: 1, control: 1}\n"
            "  probability: 0.8\n  seed_env: FLOURISH_ALLOCATION_SEED\n" + STRATA
        )
    )


@pytest.fixture(scope="session")
def blocks_2_1_1() -> Protocol:
    """Permuted blocks of 4 or 8 at 2:1:1 (reflective : instruct : control)."""
    return parse(
        example_variant(
            "allocation:\n  scheme: permuted_blocks\n"
            "  ratio: {instruct: 1, reflective: 2, control: 1}\n"
            "  block_sizes: [4, 8]\n  seed_env: FLOURISH_ALLOCATION_SEED\n" + STRATA
        )
    )


@pytest.fixture(scope="session")
def minimisation_2_1_1() -> Protocol:
    return parse(
        example_variant(
            "allocation:\n  scheme: minimisation\n"
            "  ratio: {instruct: 1, reflective: 2, control: 1}\n"
            "  probability: 0.8\n  seed_env: FLOURISH_ALLOCATION_SEED\n" + STRATA
        )
    )


@pytest.fixture(scope="session")
def simple_2_1_1() -> Protocol:
    return parse(
        example_variant(
            "allocation:\n  scheme: simple\n"
            "  ratio: {instruct: 1, reflective: 2, control: 1}\n"
            "  seed_env: FLOURISH_ALLOCATION_SEED\n"
        )
    )


@pytest.fixture(scope="session")
def unstratified_blocks() -> Protocol:
    return parse(
        example_variant(
            "allocation:\n  scheme: permuted_blocks\n"
            "  ratio: {instruct: 1, reflective: 1, control: 1}\n"
            "  block_sizes: [3, 6]\n  seed_env: FLOURISH_ALLOCATION_SEED\n"
        )
    )


@pytest.fixture(scope="session")
def preference_trial() -> Protocol:
    """The example trial in which people may choose one of the two assistants."""
    return parse(
        example_variant(
            EXAMPLE_ALLOCATION
            + "  preference_arm: {question: preferred_assistant, randomise_value: no_preference}\n",
            preference=True,
        )
    )


@pytest.fixture(scope="session")
def without_control() -> Protocol:
    """An amendment of the example that drops the control arm."""
    text = edit(EXAMPLE_TEXT, CONTROL_ARM, "")
    text = edit(text, "{instruct: 1, reflective: 1, control: 1}", "{instruct: 1, reflective: 1}")
    text = edit(text, "block_sizes: [3, 6]", "block_sizes: [2, 4]")
    return parse(text)


@pytest.fixture
def register():
    """Register a protocol in a session (committing) and return its Study."""

    def do_register(session: Session, protocol: Protocol):
        registration = register_protocol(session, protocol, "test")
        session.commit()
        return registration.study

    return do_register


@pytest.fixture
def enrol():
    """Create consented participants of a study (committing); returns them."""

    def make(session: Session, study, count: int = 1, status: str = "consented"):
        start = session.info.setdefault("next_participant", 1)
        people = [
            Participant(study_id=study.id, code=f"P-{study.id}-{start + i:05d}", status=status)
            for i in range(count)
        ]
        session.info["next_participant"] = start + count
        session.add_all(people)
        session.commit()
        return people

    return make
