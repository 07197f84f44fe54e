"""The protocol the rehearsal runs: the example trial, administrable end to end.

The example protocol (examples/protocols/assistant-flourishing-rct.yaml) names UCLA-3 and
SD-WISE-7, whose published wording Flourish does not ship (wording status `local`): their
occasions would be refused as misconfigured. The rehearsal therefore runs the example with two
changes, made here on the parsed YAML so that the variant never drifts from the example:

- `ucla3` and `sdwise7` get the placeholder wording files in examples/rehearsal/ (marked as
  placeholders on every item; never the published items);
- every assistant arm's `base_url` points at the rehearsal's local OpenAI-compatible endpoint.

Everything else (arms, allocation, eligibility, consent, schedule, channels) is the example's.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from study.protocol import Protocol
from study.protocol.parse import parse_protocol

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PROTOCOL = ROOT / "examples" / "protocols" / "assistant-flourishing-rct.yaml"
EXAMPLE_PREREGISTRATION = ROOT / "examples" / "preregistrations" / "assistant-flourishing-rct.yaml"
PLACEHOLDER_WORDING = {
    "ucla3": "../rehearsal/ucla3.wording.yaml",
    "sdwise7": "../rehearsal/sdwise7.wording.yaml",
}


def rehearsal_protocol_text(assistant_base_url: str, source: Path = EXAMPLE_PROTOCOL) -> str:
    """The example protocol's YAML with placeholder wording and the local assistant endpoint."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["instruments"] = [
        {"id": entry, "wording": PLACEHOLDER_WORDING[entry]}
        if isinstance(entry, str) and entry in PLACEHOLDER_WORDING
        else entry
        for entry in data["instruments"]
    ]
    for arm in data["arms"]:
        if arm.get("assistant"):
            arm["assistant"]["base_url"] = assistant_base_url
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def rehearsal_protocol(assistant_base_url: str, source: Path = EXAMPLE_PROTOCOL) -> Protocol:
    """The rehearsal variant, validated like any protocol (references resolve next to `source`)."""
    text = rehearsal_protocol_text(assistant_base_url, source)
    return parse_protocol(text, f"{source} (rehearsal variant)", source.parent)


def assistant_key_envs(protocol: Protocol) -> list[str]:
    """The environment variables that hold the assistant arms' API keys."""
    return sorted(
        {arm.assistant.api_key_env for arm in protocol.model.arms if arm.assistant is not None}
    )
