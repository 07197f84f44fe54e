"""The shipped example protocol is valid and says what its documentation says it does."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from study.protocol import load_protocol

EXAMPLE = Path(__file__).parents[3] / "examples" / "protocols" / "assistant-flourishing-rct.yaml"


def test_the_example_protocol_validates():
    protocol = load_protocol(EXAMPLE)
    assert protocol.slug == "assistant-flourishing-rct"
    assert len(protocol.content_hash) == 64


def test_it_has_two_assistant_arms_and_a_no_assistant_control():
    model = load_protocol(EXAMPLE).model
    assert [arm.key for arm in model.arms] == ["instruct", "reflective", "control"]
    instruct, reflective, control = model.arms
    assert control.assistant is None
    assert instruct.assistant.system_prompt_file and not instruct.assistant.constitution_file
    assert reflective.assistant.constitution_file and not reflective.assistant.system_prompt_file
    # The YAML merge key shares the endpoint and sampling; the reflective arm overrides the rest.
    assert reflective.assistant.model == instruct.assistant.model
    assert reflective.assistant.temperature == instruct.assistant.temperature
    assert (reflective.assistant.memory, reflective.assistant.participant_goals) == (
        "longitudinal",
        True,
    )
    assert instruct.assistant.api_key_env != reflective.assistant.api_key_env


def test_the_constitution_text_is_available_from_the_protocol():
    protocol = load_protocol(EXAMPLE)
    constitution = protocol.assistant_instructions("reflective")
    assert "sycophancy" in constitution.lower()
    assert protocol.assistant_instructions("control") is None


def test_allocation_is_stratified_permuted_blocks_of_three_and_six():
    allocation = load_protocol(EXAMPLE).model.allocation
    assert allocation.scheme == "permuted_blocks"
    assert allocation.block_sizes == (3, 6)
    wellbeing, age_band = allocation.strata
    assert (wellbeing.instrument, wellbeing.cut_points, wellbeing.labels) == (
        "who5",
        (13,),
        ("low", "high"),
    )
    assert age_band.question == "age"


def test_weekly_waves_at_seven_in_the_evening_with_a_two_day_window():
    schedule = load_protocol(EXAMPLE).model.schedule
    weekly = schedule["weekly"]
    assert weekly.instruments == ("who5", "ucla3")
    assert weekly.local_time == time(19, 0)
    assert str(weekly.window) == "48h"
    assert [str(r) for r in weekly.reminders] == ["24h"]
    assert (str(weekly.every), weekly.count) == ("7d", 12)
    assert [str(schedule[name].at) for name in ("week_6", "week_12", "week_24")] == [
        "6w",
        "12w",
        "24w",
    ]
    ema = schedule["ema_week_1"]
    assert (ema.per_day, ema.days, ema.opt_in) == (3, 7, True)


def test_consent_has_comprehension_questions_and_the_chat_storage_option():
    protocol = load_protocol(EXAMPLE)
    consent = protocol.model.consent
    assert len(consent.comprehension) >= 3
    assert [item.id for item in consent.optional_items] == ["store_chat_content", "ema"]
    assert "Withdrawing" in protocol.file_text(consent.document)
