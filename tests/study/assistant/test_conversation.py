"""What each arm's assistant is sent: the protocol's instructions verbatim with their hash, the
generation parameters, and memory and goals only where the arm's policy allows them."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from study.assistant.conversation import (
    GOALS_HEADING,
    MAX_HISTORY_EXCHANGES,
    MEMORY_HEADING,
    Exchange,
    arm_assistant,
    build_request,
)
from study.protocol import load_protocol
from tests.study.assistant.enrolled import EXAMPLES

PROTOCOL = load_protocol(EXAMPLES / "protocols/assistant-flourishing-rct.yaml")
HISTORY = [Exchange("I want to walk more", "What would make it easier?")]


def test_the_system_message_is_the_arms_file_verbatim_and_its_version_is_the_files_sha256():
    for arm, path in [
        ("instruct", "assistants/instruction-following-system-prompt.md"),
        ("reflective", "assistants/positive-alignment-constitution.md"),
    ]:
        assistant = arm_assistant(PROTOCOL, arm)
        raw = (EXAMPLES / path).read_bytes()
        assert assistant.prompt_version == hashlib.sha256(raw).hexdigest()
        request = build_request(assistant, "Hello")
        assert request.messages[0] == {"role": "system", "content": raw.decode().rstrip() + "\n"}


def test_an_arm_without_an_assistant_or_an_unknown_arm_has_none():
    assert arm_assistant(PROTOCOL, "control") is None
    assert arm_assistant(PROTOCOL, "no-such-arm") is None


def test_the_generation_parameters_are_the_protocols():
    request = build_request(arm_assistant(PROTOCOL, "instruct"), "Hello")
    assert request.payload(stream=False) | {"messages": None} == {
        "model": "llama-3.1-8b-instruct",
        "messages": None,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 800,
        "seed": 20260302,
        "stream": False,
    }


def test_session_memory_sends_the_conversation_so_far_and_no_notes_or_goals():
    instruct = arm_assistant(PROTOCOL, "instruct")  # memory: session, participant_goals: false
    request = build_request(instruct, "And today?", history=HISTORY, notes=["n"], goals=["g"])
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[1]["content"] == "I want to walk more"
    assert request.messages[-1] == {"role": "user", "content": "And today?"}
    assert MEMORY_HEADING not in request.messages[0]["content"]
    assert GOALS_HEADING not in request.messages[0]["content"]


def test_no_memory_sends_only_the_instructions_and_the_new_message():
    spec = arm_assistant(PROTOCOL, "instruct")
    forgetful = dataclasses.replace(spec, spec=spec.spec.model_copy(update={"memory": "none"}))
    request = build_request(forgetful, "And today?", history=HISTORY)
    assert [m["role"] for m in request.messages] == ["system", "user"]


def test_longitudinal_memory_adds_the_participants_notes_and_goals_in_their_words():
    reflective = arm_assistant(PROTOCOL, "reflective")  # longitudinal, participant_goals: true
    request = build_request(
        reflective,
        "Hi",
        history=HISTORY,
        notes=["My sister is called Ada", "I work night shifts"],
        goals=["Walk to work twice a week"],
    )
    system = request.messages[0]["content"]
    assert system.startswith(reflective.instructions.rstrip())
    notes_part = system.split(MEMORY_HEADING)[1].split(GOALS_HEADING)[0]
    assert "- My sister is called Ada\n- I work night shifts" in notes_part
    assert system.split(GOALS_HEADING)[1].rstrip().endswith("- Walk to work twice a week")
    assert len(request.messages) == 4


def test_without_notes_or_goals_no_empty_headings_are_sent():
    system = build_request(arm_assistant(PROTOCOL, "reflective"), "Hi").messages[0]["content"]
    assert MEMORY_HEADING not in system and GOALS_HEADING not in system


@pytest.mark.parametrize("extra", [0, 7])
def test_a_long_conversation_sends_only_the_most_recent_exchanges(extra):
    history = [Exchange(f"m{i}", f"r{i}") for i in range(MAX_HISTORY_EXCHANGES + extra)]
    request = build_request(arm_assistant(PROTOCOL, "instruct"), "last", history=history)
    users = [m["content"] for m in request.messages if m["role"] == "user"]
    assert len(users) == MAX_HISTORY_EXCHANGES + 1
    assert users[0] == f"m{extra}" and users[-1] == "last"
