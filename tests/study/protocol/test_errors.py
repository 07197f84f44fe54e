"""Mistakes in a protocol are reported as `FILE:LINE: field: message`, all of them at once."""

from __future__ import annotations

import pytest

from study.protocol import ProtocolError, load_protocol

from .conftest import MINIMAL, SOURCE, edit, line_of, only


def test_the_minimal_protocol_is_valid(parse):
    protocol = parse(MINIMAL)
    assert protocol.model.study.slug == "mini-trial"
    assert protocol.model.study.languages == ("en",)
    assert protocol.model.arms[0].assistant.memory == "session"  # the documented default


def test_a_value_out_of_range_names_the_dotted_field(problems):
    text = edit(MINIMAL, "temperature: 0.7", "temperature: 2.5")
    line = line_of(text, "temperature:")
    message = only(problems(text), f"{SOURCE}:{line}: arms[0].assistant.temperature: ")
    assert "less than or equal to 2" in message and "2.5" in message


def test_a_misspelt_key_gets_a_did_you_mean(problems):
    text = edit(MINIMAL, "allocation:\n", "alocation:\n")
    reported = problems(text)
    assert (
        f"{SOURCE}:{line_of(text, 'alocation:')}: alocation: unknown key 'alocation'; "
        "did you mean 'allocation'?"
    ) in reported
    assert f"{SOURCE}:1: missing required section 'allocation'" in reported


def test_a_misspelt_nested_key_is_suggested_from_the_keys_allowed_there(problems):
    text = edit(MINIMAL, "    count: 4\n", "    cuont: 4\n")
    reported = problems(text)
    line = line_of(text, "cuont")
    assert (
        f"{SOURCE}:{line}: schedule.weekly.cuont: unknown key 'cuont'; did you mean 'count'?"
        in (reported)
    )


def test_an_unknown_key_without_a_close_match_lists_the_allowed_keys(problems):
    text = edit(MINIMAL, "    assistant: null\n", "    assistant: null\n    colour: red\n")
    message = only(problems(text), f"{SOURCE}:{line_of(text, 'colour')}: arms[1].colour: ")
    allowed = "key, name, description, participant_description, assistant, preference"
    assert f"allowed here: {allowed}" in message


def test_a_missing_key_is_reported_at_its_parent(problems):
    text = edit(MINIMAL, "      model: test-model\n", "")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'assistant:')}: arms[0].assistant.model: "
        "missing required key 'model'",
    )


def test_duplicate_keys_are_reported(problems):
    text = edit(MINIMAL, "  target_enrollment: 60\n", "  target_enrollment: 60\n  title: Again\n")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'title: Again')}: study.title: duplicate key 'title' "
        "(first given at line 3)",
    )


def test_a_yaml_syntax_error_gives_file_and_line(problems):
    text = edit(MINIMAL, "  block_sizes: [2, 4]\n", "  block_sizes: [2, 4\n")
    reported = problems(text)
    assert len(reported) == 1
    assert reported[0].startswith(f"{SOURCE}:") and "YAML syntax error" in reported[0]
    line = int(reported[0].split(":")[1])
    assert line_of(text, "block_sizes") <= line <= line_of(text, "block_sizes") + 2


def test_a_missing_referenced_file_is_reported_at_the_referencing_field(problems):
    text = edit(MINIMAL, "constitution_file: constitution.md", "constitution_file: gone.md")
    message = only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'constitution_file')}: arms[0].assistant.constitution_file: ",
    )
    assert "file not found: 'gone.md'" in message


def test_an_api_key_in_place_of_its_variable_name_is_refused(problems):
    text = edit(MINIMAL, "api_key_env: MINI_API_KEY", "api_key_env: sk-abc123def456")
    message = only(
        problems(text), f"{SOURCE}:{line_of(text, 'api_key_env')}: arms[0].assistant.api_key_env: "
    )
    assert "looks like an API key itself" in message


def test_ratio_keys_must_match_arm_keys(problems):
    text = edit(MINIMAL, "ratio: {assisted: 1, control: 1}", "ratio: {asisted: 1, control: 1}")
    reported = problems(text)
    line = line_of(text, "ratio:")
    assert reported == [
        f"{SOURCE}:{line}: allocation.ratio: no ratio for arm(s) assisted",
        f"{SOURCE}:{line}: allocation.ratio.asisted: there is no arm 'asisted'; "
        "did you mean 'assisted'? (arms: assisted, control)",
    ]


def test_block_sizes_must_be_multiples_of_the_ratio_sum(problems):
    text = edit(MINIMAL, "block_sizes: [2, 4]", "block_sizes: [2, 3]")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'block_sizes')}: allocation.block_sizes[1]: "
        "block size 3 is not a multiple of the ratio sum 2",
    )


def test_strata_must_refer_to_eligibility_questions(problems):
    text = edit(MINIMAL, "      question: age\n", "      question: ages\n")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'question: ages')}: allocation.strata[0].question: "
        "there is no eligibility question 'ages'; did you mean 'age'?",
    )


def test_the_schedule_may_only_use_declared_instruments(problems):
    text = edit(MINIMAL, "    instruments: [who5]\n", "    instruments: [who_5]\n")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, '[who_5]')}: schedule.weekly.instruments[0]: "
        "'who_5' is not declared in instruments; did you mean 'who5'?",
    )


def test_a_window_longer_than_the_repeat_interval_is_refused(problems):
    text = edit(MINIMAL, "window: 48h", "window: 8d")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'window: 8d')}: schedule.weekly.window: "
        "window 8d is longer than the interval every 7d",
    )


def test_times_must_be_hh_mm(problems):
    text = edit(MINIMAL, 'local_time: "19:00"', 'local_time: "7pm"')
    message = only(
        problems(text), f"{SOURCE}:{line_of(text, 'local_time')}: schedule.weekly.local_time: "
    )
    assert "is not a time of day" in message


def test_durations_without_a_unit_are_explained(problems):
    text = edit(MINIMAL, "window: 48h", "window: 48")
    message = only(
        problems(text), f"{SOURCE}:{line_of(text, 'window: 48')}: schedule.weekly.window: "
    )
    assert "48 has no unit" in message


def test_a_wrong_schedule_kind_is_suggested(problems):
    text = edit(MINIMAL, "kind: wave", "kind: waves")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'kind: waves')}: schedule.weekly.kind: "
        "'waves' is not one of baseline, wave, followup, ema; did you mean 'wave'?",
    )


def test_a_reminder_outside_its_window_is_refused(problems):
    text = edit(MINIMAL, "reminders: [24h]", "reminders: [24h, 2d]")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'reminders')}: schedule.weekly.reminders[1]: "
        "reminder at 2d is not inside the 48h window",
    )


def test_an_invitation_during_quiet_hours_is_refused(problems):
    text = edit(MINIMAL, 'local_time: "19:00"', 'local_time: "22:00"')
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'local_time')}: schedule.weekly.local_time: "
        "22:00 falls within the quiet hours 21:30-08:00",
    )


def test_the_default_channel_must_be_allowed(problems):
    text = edit(MINIMAL, "default: email", "default: sms")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'default: sms')}: channels.default: "
        "'sms' is not an allowed channel",
    )


def test_an_unquoted_version_number_gets_a_hint(problems):
    text = edit(MINIMAL, 'version: "1"', "version: 1.0")
    message = only(problems(text), f"{SOURCE}:{line_of(text, 'version:')}: consent.version: ")
    assert "put it in quotes" in message


def test_eligibility_rules_must_fit_the_question_type(problems):
    text = edit(MINIMAL, "eligible_if: {min: 18}", "eligible_if: {equals: yes}")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'eligible_if')}: eligibility.questions[0].eligible_if.equals: "
        "'equals' does not apply to a number question",
    )


def test_text_must_be_given_in_every_offered_language(problems):
    text = edit(
        MINIMAL, "  target_enrollment: 60\n", "  target_enrollment: 60\n  languages: [en, es]\n"
    )
    reported = problems(text)
    assert (
        f"{SOURCE}:{line_of(text, 'How old')}: eligibility.questions[0].text: "
        "no text in es (the study offers en, es)" in reported
    )
    assert (
        f"{SOURCE}:{line_of(text, 'ineligible_message')}: eligibility.ineligible_message: "
        "no text in es (the study offers en, es)" in reported
    )


def test_every_problem_is_reported_in_one_pass(problems):
    text = MINIMAL
    text = edit(text, "temperature: 0.7", "temperature: 9")
    text = edit(text, "slug: mini-trial", "slug: Mini Trial")
    text = edit(text, "block_sizes: [2, 4]", "block_sizes: [3]")
    text = edit(text, "    instruments: [who5]\n", "    instruments: [sf36]\n")
    text = edit(text, "document: consent.md", "document: nowhere.md")
    text = edit(text, "default: email", "default: fax")
    reported = problems(text)
    fields = [problem.split(": ")[1] for problem in reported]
    assert fields == [
        "study.slug",
        "arms[0].assistant.temperature",
        "allocation.block_sizes[0]",
        "consent.document",
        "schedule.weekly.instruments[0]",
        "channels.default",
    ]


def test_the_protocol_must_be_a_mapping(problems):
    assert problems("- just\n- a list\n") == [
        f"{SOURCE}:1: the protocol is a list, not a mapping; it must be a mapping of sections"
    ]


def test_an_unreadable_file_is_a_problem_without_a_line(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ProtocolError) as caught:
        load_protocol(missing)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"


def test_protocol_error_lists_problems_one_per_line(problems):
    text = edit(MINIMAL, "default: email", "default: fax")
    text = edit(text, "temperature: 0.7", "temperature: 9")
    with pytest.raises(ProtocolError) as caught:
        from study.protocol import parse_protocol

        parse_protocol(text, SOURCE, None, files={"constitution.md": "x", "consent.md": "y"})
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    assert len(caught.value.problems) == 2
