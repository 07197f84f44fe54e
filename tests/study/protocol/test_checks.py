"""Cross-field rules beyond the basics: allocation schemes, strata, preference designs, EMA."""

from __future__ import annotations

from .conftest import MINIMAL, SOURCE, edit, line_of, only

PREFERENCE_QUESTION = """\
    - id: preferred_arm
      text: {en: "Which group would you prefer?"}
      type: choice
      options:
        - {value: assisted, text: {en: "The assistant"}}
        - {value: either, text: {en: "No preference: randomise me"}}
  ineligible_message:"""


def test_minimisation_needs_factors_and_block_sizes_belong_to_permuted_blocks(problems):
    text = edit(MINIMAL, "scheme: permuted_blocks", "scheme: minimisation\n  probability: 0.8")
    reported = problems(text)
    assert reported == [
        f"{SOURCE}:{line_of(text, 'block_sizes')}: allocation.block_sizes: "
        "block_sizes apply only to permuted_blocks, not minimisation"
    ]


def test_probability_is_only_for_minimisation_and_in_range(problems):
    text = edit(MINIMAL, "block_sizes: [2, 4]", "block_sizes: [2, 4]\n  probability: 0.4")
    message = only(
        problems(text), f"{SOURCE}:{line_of(text, 'probability')}: allocation.probability: "
    )
    assert "greater than or equal to 0.5" in message
    text = edit(MINIMAL, "block_sizes: [2, 4]", "block_sizes: [2, 4]\n  probability: 0.9")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'probability')}: allocation.probability: "
        "probability applies only to minimisation, not permuted_blocks",
    )


def test_an_instrument_factor_must_be_measured_at_baseline(problems, parse):
    factor = "      question: age\n      cut_points: [35]\n"
    baseline_score = "      instrument: who5\n      score: raw\n      cut_points: [13]\n"
    text = edit(MINIMAL, factor, baseline_score)
    assert parse(text).model.allocation.strata[0].instrument == "who5"
    not_at_baseline = edit(text, "    instruments: [who5, swls]\n", "    instruments: [swls]\n")
    only(
        problems(not_at_baseline),
        f"{SOURCE}:{line_of(not_at_baseline, 'instrument: who5')}: "
        "allocation.strata[0].instrument: "
        "'who5' is not given at baseline, so there is no score to stratify on",
    )


def test_a_factor_names_a_question_or_an_instrument_not_both(problems):
    text = edit(MINIMAL, "      question: age\n", "      question: age\n      instrument: who5\n")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, '- name: age_band')}: allocation.strata[0]: give exactly one of "
        "question (a screening answer) or instrument (a baseline score)",
    )


def test_a_preference_design_maps_answers_to_preference_arms(parse, problems):
    text = edit(MINIMAL, "  ineligible_message:", PREFERENCE_QUESTION)
    text = edit(
        text,
        "  block_sizes: [2, 4]\n",
        "  block_sizes: [2, 4]\n"
        "  preference_arm: {question: preferred_arm, randomise_value: either}\n",
    )
    not_marked = problems(text)
    assert not_marked == [
        f"{SOURCE}:{line_of(text, 'preference_arm:')}: allocation.preference_arm: "
        "a preference design needs at least one arm with preference: true",
        f"{SOURCE}:{line_of(text, 'preference_arm:')}: allocation.preference_arm.question: "
        "option 'assisted' of 'preferred_arm' is not an arm with preference: true "
        "(preference arms: none)",
    ]
    marked = edit(text, "    description: Has an assistant.\n",
                  "    description: Has an assistant.\n    preference: true\n")  # fmt: skip
    assert parse(marked).model.allocation.preference_arm.randomise_value == "either"


def test_a_preference_arm_needs_a_preference_design(problems):
    text = edit(MINIMAL, "    description: No assistant.\n",
                "    description: No assistant.\n    preference: true\n")  # fmt: skip
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'preference: true')}: arms[1].preference: "
        "arm is a preference option but allocation.preference_arm is not set",
    )


def ema(**overrides) -> str:
    fields = {
        "per_day": "3",
        "daily_window": '["09:00", "21:00"]',
        "min_spacing": "90m",
        "expires_after": "30m",
    }
    fields.update(overrides)
    body = "".join(f"    {key}: {value}\n" for key, value in fields.items())
    entry = f"  ema:\n    kind: ema\n    instruments: [who5]\n    days: 7\n{body}"
    return edit(MINIMAL, "channels:", entry + "channels:")


def test_a_valid_ema_block(parse):
    entry = parse(ema()).model.schedule["ema"]
    assert (entry.per_day, entry.days, str(entry.min_spacing)) == (3, 7, "90m")


def test_ema_prompts_must_fit_their_daily_window(problems):
    text = ema(per_day="10")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'per_day')}: schedule.ema.per_day: "
        "10 prompts 90m apart need 810 minutes, but the daily window is 720 minutes",
    )


def test_ema_prompts_must_expire_before_the_next_can_arrive(problems):
    text = ema(expires_after="2h")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'expires_after')}: schedule.ema.expires_after: "
        "prompts would overlap: expires_after 2h is longer than min_spacing 90m",
    )


def test_an_ema_window_overlapping_quiet_hours_is_refused(problems):
    text = ema(daily_window='["07:00", "21:00"]')
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'daily_window')}: schedule.ema.daily_window: "
        "07:00-21:00 overlaps the quiet hours 21:30-08:00",
    )


def test_a_wave_needs_exactly_one_of_count_or_until(problems):
    text = edit(MINIMAL, "    count: 4\n", "    count: 4\n    until: 12w\n")
    only(
        problems(text),
        f"{SOURCE}:{line_of(text, 'weekly:')}: schedule.weekly: give exactly one of count or until",
    )


def test_a_broken_schedule_entry_does_not_hide_a_timing_mistake_in_another(problems):
    text = edit(MINIMAL, "    kind: baseline\n", "    kind: baseline\n    window: soon\n")
    text = edit(text, "window: 48h", "window: 8d")
    reported = problems(text)
    assert [problem.split(": ")[1] for problem in reported] == [
        "schedule.baseline.window",
        "schedule.weekly.window",
    ]
