"""What an arm's assistant is sent: exactly what the protocol says, plus what the participant
chose to give it.

The system message is the arm's system prompt or constitution, verbatim. Its version is the
SHA-256 of that file (the hash the protocol's content hash already covers), recorded with every
turn as `prompt_version`. Two things may be appended, each under a fixed heading written here:
the participant's memory notes (only for `memory: longitudinal`) and the goals they wrote for
themselves (only with `participant_goals: true`). Both are the participant's own words, which
they can see, change and delete; nothing about them is inferred. The conversation so far is sent
for `memory: session` and `longitudinal`, never for `none`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..protocol import Protocol
from ..protocol.parse import normalise
from ..protocol.schema import Assistant
from .client import ChatRequest

# The earlier exchanges of a conversation sent with each message; older ones are left out so a
# long conversation cannot outgrow the model's context.
MAX_HISTORY_EXCHANGES = 20

MEMORY_HEADING = "## Notes the participant asked you to remember"
MEMORY_PREAMBLE = (
    "The participant keeps these notes for you and can read, change or delete them at any "
    "time. Use them where they help; do not assume anything beyond them."
)
GOALS_HEADING = "## The participant's own goals"
GOALS_PREAMBLE = (
    "The participant wrote these goals for themselves and asked you to support them. They are "
    "the participant's choices: support them as the participant understands them, and do not "
    "add goals or values of your own."
)


@dataclass(frozen=True)
class ArmAssistant:
    """An arm's assistant as the protocol configures it, with its instructions and version."""

    arm_key: str
    spec: Assistant
    instructions: str
    prompt_version: str

    @property
    def remembers_session(self) -> bool:
        return self.spec.memory in ("session", "longitudinal")

    @property
    def keeps_notes(self) -> bool:
        return self.spec.memory == "longitudinal"

    @property
    def takes_goals(self) -> bool:
        return self.spec.participant_goals


def arm_assistant(protocol: Protocol, arm_key: str) -> ArmAssistant | None:
    """The assistant of arm `arm_key`, or None for an arm without one (or an unknown arm)."""
    try:
        spec = protocol.model.arm(arm_key).assistant
    except KeyError:
        return None
    if spec is None:
        return None
    instructions = protocol.referenced_files[normalise(spec.instructions_file)]
    return ArmAssistant(arm_key, spec, instructions.text, instructions.sha256)


@dataclass(frozen=True)
class Exchange:
    """An earlier message of this conversation and the reply it got."""

    message: str
    reply: str


def system_message(
    assistant: ArmAssistant, *, notes: Sequence[str] = (), goals: Sequence[str] = ()
) -> str:
    """The instructions, then the notes and goals the arm allows (none are added otherwise)."""
    parts = [assistant.instructions.rstrip()]
    if assistant.keeps_notes and notes:
        parts.append(_section(MEMORY_HEADING, MEMORY_PREAMBLE, notes))
    if assistant.takes_goals and goals:
        parts.append(_section(GOALS_HEADING, GOALS_PREAMBLE, goals))
    return "\n\n".join(parts) + "\n"


def _section(heading: str, preamble: str, entries: Sequence[str]) -> str:
    lines = "\n".join(f"- {' '.join(entry.split())}" for entry in entries)
    return f"{heading}\n\n{preamble}\n\n{lines}"


def build_request(
    assistant: ArmAssistant,
    message: str,
    *,
    history: Sequence[Exchange] = (),
    notes: Sequence[str] = (),
    goals: Sequence[str] = (),
) -> ChatRequest:
    """The chat-completions request for `message`, following the arm's memory policy."""
    messages: list[dict[str, str]] = [
        {"role": "system", "content": system_message(assistant, notes=notes, goals=goals)}
    ]
    if assistant.remembers_session:
        for exchange in list(history)[-MAX_HISTORY_EXCHANGES:]:
            messages.append({"role": "user", "content": exchange.message})
            messages.append({"role": "assistant", "content": exchange.reply})
    messages.append({"role": "user", "content": message})
    spec = assistant.spec
    return ChatRequest(
        model=spec.model,
        messages=tuple(messages),
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
    )
