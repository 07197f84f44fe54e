"""Rules that relate several values of a protocol, reported all at once with their paths.

`cross_check` receives the sections that passed schema validation (a section with schema
errors is absent, and rules that need it are skipped: its own errors are already reported).
Each finding is `(path, message)`; the loader turns the path into a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import time
from typing import Any

from pydantic import BaseModel

from instruments.datafile import format_path, suggest

from .schema import (
    AllocationSpec,
    ArmSpec,
    BaselineEntry,
    Channels,
    ConsentSpec,
    EligibilityQuestion,
    EmaEntry,
    FollowupEntry,
    InstrumentRef,
    StudyInfo,
    WaveEntry,
)
from .types import _Localized

Finding = tuple[tuple, str]


def cross_check(sections: dict[str, Any]) -> list[Finding]:
    """Every cross-field rule of the protocol language, applied to the validated sections."""
    findings: list[Finding] = []
    study: StudyInfo | None = sections.get("study")
    arms: tuple[ArmSpec, ...] | None = sections.get("arms")
    allocation: AllocationSpec | None = sections.get("allocation")
    eligibility = sections.get("eligibility")
    consent: ConsentSpec | None = sections.get("consent")
    instruments: tuple[InstrumentRef, ...] | None = sections.get("instruments")
    schedule: dict | None = sections.get("schedule")
    channels: Channels | None = sections.get("channels")
    questions = {q.id: q for q in eligibility.questions} if eligibility else None

    if study:
        findings += _study(study)
        findings += _languages(study, sections)
    if arms:
        findings += _arms(arms)
    if allocation:
        findings += _allocation(allocation)
        if arms:
            findings += _ratio_and_preference(allocation, arms, questions)
        if questions is not None and instruments is not None and schedule is not None:
            findings += _strata(allocation, questions, instruments, schedule)
    if eligibility:
        findings += _eligibility(eligibility.questions)
    if consent:
        findings += _consent(consent)
    if instruments:
        findings += _duplicates(
            [(("instruments", i, "id"), ref.id) for i, ref in enumerate(instruments)],
            "instrument",
        )
    # A schedule with a broken entry still has its other entries checked.
    entries = schedule if schedule is not None else sections.get("schedule_entries")
    if entries:
        findings += _schedule(entries, instruments, channels)
    if channels:
        findings += _channels(channels)
    return findings


def _duplicates(items: list[tuple[tuple, str]], what: str) -> Iterator[Finding]:
    seen: dict[str, tuple] = {}
    for path, value in items:
        if value in seen:
            yield path, f"duplicate {what} '{value}' (also at {_dotted(seen[value])})"
        else:
            seen[value] = path


def _not_declared(instrument: str, declared: Iterable[str]) -> str:
    return f"'{instrument}' is not declared in instruments{suggest(instrument, declared)}"


def _no_question(question: str, questions: Iterable[str]) -> str:
    return f"there is no eligibility question '{question}'{suggest(question, questions)}"


def _dotted(path: tuple) -> str:
    return format_path(path)


# --- study and languages ------------------------------------------------------------------------


def _study(study: StudyInfo) -> Iterator[Finding]:
    yield from _duplicates(
        [(("study", "languages", i), code) for i, code in enumerate(study.languages)], "language"
    )
    if study.default_language not in study.languages:
        yield (
            ("study", "default_language"),
            f"'{study.default_language}' is not one of the offered languages "
            f"({', '.join(study.languages)})",
        )


def _languages(study: StudyInfo, sections: dict[str, Any]) -> Iterator[Finding]:
    """Every piece of participant-facing text must be given in every offered language."""
    offered = set(study.languages)
    for name, value in sections.items():
        if name == "schedule_entries":
            continue
        for path, texts in _localized_fields(value, (name,)):
            missing = sorted(offered - set(texts))
            extra = sorted(set(texts) - offered)
            if missing:
                yield (
                    path,
                    f"no text in {', '.join(missing)} "
                    f"(the study offers {', '.join(sorted(offered))})",
                )
            for language in extra:
                yield (*path, language), f"'{language}' is not a language the study offers"


def _localized_fields(value: Any, path: tuple) -> Iterator[tuple[tuple, dict]]:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            child = getattr(value, name)
            key = field.alias or name
            if any(isinstance(meta, _Localized) for meta in field.metadata) and child:
                yield (*path, key), child
            else:
                yield from _localized_fields(child, (*path, key))
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _localized_fields(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _localized_fields(item, (*path, key))


# --- arms and allocation ------------------------------------------------------------------------


def _arms(arms: tuple[ArmSpec, ...]) -> Iterator[Finding]:
    yield from _duplicates([(("arms", i, "key"), arm.key) for i, arm in enumerate(arms)], "arm key")
    for i, arm in enumerate(arms):
        assistant = arm.assistant
        if assistant is None:
            continue
        path = ("arms", i, "assistant")
        if assistant.system_prompt_file and assistant.constitution_file:
            yield (
                (*path, "constitution_file"),
                "give either system_prompt_file or constitution_file, not both",
            )
        elif not (assistant.system_prompt_file or assistant.constitution_file):
            yield path, "an assistant needs a system_prompt_file or a constitution_file"


def _allocation(allocation: AllocationSpec) -> Iterator[Finding]:
    scheme = allocation.scheme
    total = allocation.ratio_sum
    if scheme == "permuted_blocks":
        if not allocation.block_sizes:
            yield (
                ("allocation", "scheme"),
                f"permuted_blocks needs block_sizes (multiples of the ratio sum {total})",
            )
        for i, size in enumerate(allocation.block_sizes):
            if total and size % total:
                yield (
                    ("allocation", "block_sizes", i),
                    f"block size {size} is not a multiple of the ratio sum {total}",
                )
        yield from _duplicates(
            [
                (("allocation", "block_sizes", i), str(s))
                for i, s in enumerate(allocation.block_sizes)
            ],
            "block size",
        )
    elif allocation.block_sizes:
        yield (
            ("allocation", "block_sizes"),
            f"block_sizes apply only to permuted_blocks, not {scheme}",
        )
    if scheme == "minimisation":
        if not allocation.strata:
            yield ("allocation", "strata"), "minimisation needs at least one factor in strata"
    elif allocation.probability is not None:
        yield (
            ("allocation", "probability"),
            f"probability applies only to minimisation, not {scheme}",
        )
    if scheme == "simple" and allocation.strata:
        yield ("allocation", "strata"), "simple randomisation does not stratify; remove strata"
    yield from _duplicates(
        [(("allocation", "strata", i, "name"), f.name) for i, f in enumerate(allocation.strata)],
        "stratification factor",
    )


def _ratio_and_preference(
    allocation: AllocationSpec,
    arms: tuple[ArmSpec, ...],
    questions: dict[str, EligibilityQuestion] | None,
) -> Iterator[Finding]:
    keys = [arm.key for arm in arms]
    for key in allocation.ratio:
        if key not in keys:
            yield (
                ("allocation", "ratio", key),
                f"there is no arm '{key}'{suggest(key, keys)} (arms: {', '.join(keys)})",
            )
    missing = [key for key in keys if key not in allocation.ratio]
    if missing:
        yield ("allocation", "ratio"), f"no ratio for arm(s) {', '.join(missing)}"

    preference_keys = [arm.key for arm in arms if arm.preference]
    design = allocation.preference_arm
    if design is None:
        for i, arm in enumerate(arms):
            if arm.preference:
                yield (
                    ("arms", i, "preference"),
                    "arm is a preference option but allocation.preference_arm is not set",
                )
        return
    path = ("allocation", "preference_arm")
    if not preference_keys:
        yield path, "a preference design needs at least one arm with preference: true"
    if questions is None:
        return
    question = questions.get(design.question)
    if question is None:
        yield (
            (*path, "question"),
            _no_question(design.question, questions),
        )
        return
    if question.type != "choice":
        yield (
            (*path, "question"),
            f"'{design.question}' must be a choice question, not {question.type}",
        )
        return
    values = [option.value for option in question.options]
    if design.randomise_value not in values:
        yield (
            (*path, "randomise_value"),
            f"'{design.randomise_value}' is not an option of '{design.question}' "
            f"({', '.join(values)})",
        )
    for value in values:
        if value != design.randomise_value and value not in preference_keys:
            yield (
                (*path, "question"),
                f"option '{value}' of '{design.question}' is not an arm with preference: true "
                f"(preference arms: {', '.join(preference_keys) or 'none'})",
            )


def _strata(
    allocation: AllocationSpec,
    questions: dict[str, EligibilityQuestion],
    instruments: tuple[InstrumentRef, ...],
    schedule: dict,
) -> Iterator[Finding]:
    declared = {ref.id for ref in instruments}
    at_baseline = {
        instrument
        for entry in schedule.values()
        if isinstance(entry, BaselineEntry)
        for instrument in entry.instruments
    }
    for i, factor in enumerate(allocation.strata):
        path = ("allocation", "strata", i)
        if (factor.question is None) == (factor.instrument is None):
            yield (
                path,
                "give exactly one of question (a screening answer) "
                "or instrument (a baseline score)",
            )
            continue
        if factor.labels and len(factor.labels) != len(factor.cut_points) + 1:
            yield (
                (*path, "labels"),
                f"{len(factor.cut_points)} cut point(s) make {len(factor.cut_points) + 1} levels, "
                f"but {len(factor.labels)} label(s) are given",
            )
        if list(factor.cut_points) != sorted(set(factor.cut_points)):
            yield (*path, "cut_points"), "cut points must be strictly increasing"
        if factor.instrument is not None:
            if factor.instrument not in declared:
                yield (
                    (*path, "instrument"),
                    _not_declared(factor.instrument, declared),
                )
            elif factor.instrument not in at_baseline:
                yield (
                    (*path, "instrument"),
                    f"'{factor.instrument}' is not given at baseline, "
                    "so there is no score to stratify on",
                )
            if factor.score is None:
                yield path, "an instrument factor needs score (which of its scores to cut)"
            if not factor.cut_points:
                yield path, "an instrument factor needs cut_points"
            continue
        if factor.score is not None:
            yield (*path, "score"), "score applies only to instrument factors"
        question = questions.get(factor.question)
        if question is None:
            yield (
                (*path, "question"),
                _no_question(factor.question, questions),
            )
        elif question.type == "number" and not factor.cut_points:
            yield path, f"'{factor.question}' is a number: give cut_points to make levels"
        elif question.type != "number" and factor.cut_points:
            yield (
                (*path, "cut_points"),
                f"'{factor.question}' is {question.type}: its answers are the levels",
            )


# --- eligibility and consent --------------------------------------------------------------------


def _eligibility(questions: tuple[EligibilityQuestion, ...]) -> Iterator[Finding]:
    yield from _duplicates(
        [(("eligibility", "questions", i, "id"), q.id) for i, q in enumerate(questions)],
        "question id",
    )
    for i, question in enumerate(questions):
        path = ("eligibility", "questions", i)
        values = [option.value for option in question.options]
        yield from _duplicates(
            [((*path, "options", j, "value"), v) for j, v in enumerate(values)], "option value"
        )
        if question.type == "choice" and len(values) < 2:
            yield (*path, "options"), "a choice question needs at least two options"
        if question.type != "choice" and values:
            yield (*path, "options"), f"options apply only to choice questions, not {question.type}"
        rule = question.eligible_if
        if rule is None:
            continue
        rule_path = (*path, "eligible_if")
        given = [
            name for name in ("min", "max", "equals", "in_") if getattr(rule, name) is not None
        ]
        if not given:
            yield (
                rule_path,
                "give a rule: min/max for numbers, equals for yes_no, equals/in for choice",
            )
            continue
        allowed = {"number": {"min", "max"}, "yes_no": {"equals"}, "choice": {"equals", "in_"}}
        for name in given:
            if name not in allowed[question.type]:
                shown = "in" if name == "in_" else name
                yield (*rule_path, shown), f"'{shown}' does not apply to a {question.type} question"
        if (
            question.type == "number"
            and rule.min is not None
            and rule.max is not None
            and rule.min > rule.max
        ):
            yield (*rule_path, "min"), f"min {rule.min} is greater than max {rule.max}"
        if question.type == "yes_no" and "equals" in given and not isinstance(rule.equals, bool):
            yield (*rule_path, "equals"), "a yes_no question is eligible if it equals yes or no"
        if question.type == "choice":
            for name, chosen in (("equals", [rule.equals]), ("in", list(rule.in_ or ()))):
                for value in chosen:
                    if value is not None and value not in values:
                        yield (
                            (*rule_path, name),
                            f"'{value}' is not an option ({', '.join(values)})",
                        )


def _consent(consent: ConsentSpec) -> Iterator[Finding]:
    yield from _duplicates(
        [
            (("consent", "comprehension", i, "id"), q.id)
            for i, q in enumerate(consent.comprehension)
        ],
        "comprehension question id",
    )
    yield from _duplicates(
        [
            (("consent", "optional_items", i, "id"), o.id)
            for i, o in enumerate(consent.optional_items)
        ],
        "optional item id",
    )
    for i, question in enumerate(consent.comprehension):
        path = ("consent", "comprehension", i)
        values = [option.value for option in question.options]
        yield from _duplicates(
            [((*path, "options", j, "value"), v) for j, v in enumerate(values)], "option value"
        )
        if question.correct not in values:
            yield (
                (*path, "correct"),
                f"'{question.correct}' is not one of the options ({', '.join(values)})",
            )


# --- schedule and channels ----------------------------------------------------------------------


def _schedule(
    schedule: dict, instruments: tuple[InstrumentRef, ...] | None, channels: Channels | None
) -> Iterator[Finding]:
    declared = [ref.id for ref in instruments] if instruments else None
    baselines = [name for name, entry in schedule.items() if isinstance(entry, BaselineEntry)]
    for name in baselines[1:]:
        yield ("schedule", name, "kind"), f"only one baseline is allowed (already '{baselines[0]}')"
    quiet = channels.quiet_hours if channels else None
    for name, entry in schedule.items():
        path = ("schedule", name)
        yield from _duplicates(
            [((*path, "instruments", i), inst) for i, inst in enumerate(entry.instruments)],
            "instrument",
        )
        if declared is not None:
            for i, instrument in enumerate(entry.instruments):
                if instrument not in declared:
                    yield (
                        (*path, "instruments", i),
                        _not_declared(instrument, declared),
                    )
        yield from _timing(path, entry)
        if quiet is not None:
            yield from _quiet(path, entry, quiet.start, quiet.end)


def _timing(path: tuple, entry: Any) -> Iterator[Finding]:
    window = getattr(entry, "window", None)
    if window is not None and window.seconds <= 0:
        yield (*path, "window"), "the window must be longer than zero"
    if isinstance(entry, WaveEntry):
        if entry.every.seconds <= 0:
            yield (*path, "every"), "the interval must be longer than zero"
        elif window is not None and window > entry.every:
            yield (
                (*path, "window"),
                f"window {window} is longer than the interval every {entry.every}",
            )
        if (entry.count is None) == (entry.until is None):
            yield path, "give exactly one of count or until"
        if entry.until is not None and entry.until < entry.first_offset:
            yield (
                (*path, "until"),
                f"until {entry.until} is before the first wave at {entry.first_offset}",
            )
    if isinstance(entry, FollowupEntry) and entry.at.seconds <= 0:
        yield (*path, "at"), "a follow-up must be after enrollment"
    for i, reminder in enumerate(getattr(entry, "reminders", ())):
        if reminder.seconds <= 0:
            yield (*path, "reminders", i), "a reminder must come after the invitation"
        elif window is not None and reminder >= window:
            yield (
                (*path, "reminders", i),
                f"reminder at {reminder} is not inside the {window} window",
            )
    if isinstance(entry, EmaEntry):
        start, end = entry.daily_window
        if end <= start:
            yield (*path, "daily_window"), "the daily window must end after it starts"
        else:
            span = _minutes(end) - _minutes(start)
            needed = (entry.per_day - 1) * entry.min_spacing.seconds // 60
            if needed > span:
                yield (
                    (*path, "per_day"),
                    f"{entry.per_day} prompts {entry.min_spacing} apart need {needed} minutes, "
                    f"but the daily window is {span} minutes",
                )
        if entry.expires_after.seconds <= 0:
            yield (*path, "expires_after"), "must be longer than zero"
        elif entry.expires_after > entry.min_spacing:
            yield (
                (*path, "expires_after"),
                f"prompts would overlap: expires_after {entry.expires_after} is longer than "
                f"min_spacing {entry.min_spacing}",
            )


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _in_quiet(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def _quiet(path: tuple, entry: Any, start: time, end: time) -> Iterator[Finding]:
    span = f"quiet hours {start:%H:%M}-{end:%H:%M}"
    local_time = getattr(entry, "local_time", None)
    if local_time is not None and _in_quiet(local_time, start, end):
        yield (*path, "local_time"), f"{local_time:%H:%M} falls within the {span}"
    if isinstance(entry, EmaEntry):
        first, last = (_minutes(t) for t in entry.daily_window)
        quiet_start, quiet_end = _minutes(start), _minutes(end)
        if quiet_start < quiet_end:
            overlaps = first < quiet_end and last > quiet_start
        else:
            overlaps = last > quiet_start or first < quiet_end
        if overlaps and first < last:
            shown = "-".join(f"{t:%H:%M}" for t in entry.daily_window)
            yield (*path, "daily_window"), f"{shown} overlaps the {span}"


def _channels(channels: Channels) -> Iterator[Finding]:
    yield from _duplicates(
        [(("channels", "allowed", i), c) for i, c in enumerate(channels.allowed)], "channel"
    )
    if channels.default not in channels.allowed:
        yield ("channels", "default"), f"'{channels.default}' is not an allowed channel"
    for name in ("sms", "email"):
        if getattr(channels, name) is not None and name not in channels.allowed:
            yield ("channels", name), f"settings for {name}, which is not an allowed channel"
    quiet = channels.quiet_hours
    if quiet is not None and quiet.start == quiet.end:
        yield ("channels", "quiet_hours"), "quiet hours must start and end at different times"
