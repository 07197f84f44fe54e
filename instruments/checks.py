"""Rules that relate several values of an instrument definition, reported all at once.

`cross_check` receives the top-level fields that passed schema validation (a field with schema
errors is absent, and the rules that need it are skipped: its own errors are already
reported). Each finding is `(path, message)`; the loader turns the path into a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .datafile import format_path, suggest
from .schema import Item, ReliabilityReport, ResponseScale, Score, SmsUse, Wording

Finding = tuple[tuple, str]

# A one-message SMS answer: a 0-10 rating has 11 points; longer scales are typed poorly.
SMS_MAX_POINTS = 11


def scale_points(scale: ResponseScale) -> int:
    """How many answers the scale allows (`min`, `min + step`, ... `max`)."""
    return round((scale.max - scale.min) / scale.step) + 1


def cross_check(fields: dict[str, Any]) -> list[Finding]:
    """Every cross-field rule of the instrument language, applied to the valid fields."""
    findings: list[Finding] = []
    languages: tuple[str, ...] | None = fields.get("languages")
    scales: dict[str, ResponseScale] | None = fields.get("response_scales")
    items: tuple[Item, ...] | None = fields.get("items")
    scores: tuple[Score, ...] | None = fields.get("scores")
    wording: Wording | None = fields.get("wording")

    if languages is not None:
        findings += _duplicates([(("languages", i), code) for i, code in enumerate(languages)])
        findings += _languages(fields, languages)
    if scales is not None:
        findings += _scales(scales)
    if items is not None:
        findings += _duplicates([(("items", i, "id"), item.id) for i, item in enumerate(items)])
        if scales is not None:
            findings += _item_scales(items, scales)
        if wording is not None and wording.status == "shipped" and languages is not None:
            findings += _shipped_text(items, languages)
    if scores is not None:
        findings += _duplicates([(("scores", i, "id"), score.id) for i, score in enumerate(scores)])
        findings += _scores(scores, items)
        reliability: tuple[ReliabilityReport, ...] = fields.get("reliability") or ()
        known = [score.id for score in scores]
        for i, report in enumerate(reliability):
            if report.score is not None and report.score not in known:
                message = f"there is no score '{report.score}'{suggest(report.score, known)}"
                findings.append((("reliability", i, "score"), message))
    sms: SmsUse | None = fields.get("sms")
    if sms is not None and sms.suitable and items is not None and scales is not None:
        findings += _sms(items, scales)
    return findings


def _duplicates(values: list[tuple[tuple, str]]) -> Iterator[Finding]:
    seen: dict[str, tuple] = {}
    for path, value in values:
        if value in seen:
            yield path, f"'{value}' is given twice (also at {format_path(seen[value])})"
        else:
            seen[value] = path


def _languages(fields: dict[str, Any], languages: tuple[str, ...]) -> Iterator[Finding]:
    """Text may only be given in the instrument's listed languages."""
    listed = set(languages)
    for path, texts in _localized(fields):
        for language in texts:
            if language not in listed:
                yield (
                    (*path, language),
                    f"'{language}' is not one of the instrument's languages "
                    f"({', '.join(languages)})",
                )


def _localized(fields: dict[str, Any]) -> Iterator[tuple[tuple, dict]]:
    for name in ("reference_period", "instructions"):
        if fields.get(name):
            yield (name,), fields[name]
    for key, scale in (fields.get("response_scales") or {}).items():
        for j, anchor in enumerate(scale.anchors):
            yield ("response_scales", key, "anchors", j, "label"), anchor.label
    for i, item in enumerate(fields.get("items") or ()):
        yield ("items", i, "text"), item.text
        if item.sms_text:
            yield ("items", i, "sms_text"), item.sms_text
    for i, score in enumerate(fields.get("scores") or ()):
        yield ("scores", i, "label"), score.label


def _scales(scales: dict[str, ResponseScale]) -> Iterator[Finding]:
    for key, scale in scales.items():
        path = ("response_scales", key)
        if scale.step <= 0:
            yield (*path, "step"), f"the step must be positive (got {scale.step:g})"
            continue
        if scale.max <= scale.min:
            yield (*path, "max"), f"max {scale.max:g} must be greater than min {scale.min:g}"
            continue
        if not scale.allows(scale.max):
            yield (
                (*path, "step"),
                f"steps of {scale.step:g} from {scale.min:g} do not reach max {scale.max:g}",
            )
        seen: dict[float, int] = {}
        for j, anchor in enumerate(scale.anchors):
            if not scale.allows(anchor.value):
                yield (
                    (*path, "anchors", j, "value"),
                    f"{anchor.value:g} is not a point of the scale "
                    f"({scale.min:g} to {scale.max:g} in steps of {scale.step:g})",
                )
            elif anchor.value in seen:
                yield (
                    (*path, "anchors", j, "value"),
                    f"{anchor.value:g} is labelled twice (also anchors[{seen[anchor.value]}])",
                )
            else:
                seen[anchor.value] = j


def _item_scales(items: tuple[Item, ...], scales: dict[str, ResponseScale]) -> Iterator[Finding]:
    for i, item in enumerate(items):
        if item.scale not in scales:
            yield (
                ("items", i, "scale"),
                f"there is no response scale '{item.scale}'{suggest(item.scale, scales)}"
                f" (response_scales: {', '.join(scales)})",
            )


def _shipped_text(items: tuple[Item, ...], languages: tuple[str, ...]) -> Iterator[Finding]:
    """`wording: {status: shipped}` promises text for every item in every listed language."""
    for i, item in enumerate(items):
        for name, texts in (("text", item.text), ("sms_text", item.sms_text)):
            if texts is None:
                continue
            missing = [language for language in languages if language not in texts]
            if missing:
                yield (
                    ("items", i, name),
                    f"no {name.replace('_', ' ')} in {', '.join(missing)} "
                    "(the wording is shipped, so every item needs text in every language; "
                    "use wording.status: local to leave it to the study)",
                )


def _scores(scores: tuple[Score, ...], items: tuple[Item, ...] | None) -> Iterator[Finding]:
    score_ids = [score.id for score in scores]
    item_ids = [item.id for item in items] if items is not None else None
    for i, score in enumerate(scores):
        path = ("scores", i)
        if item_ids is not None and score.id in item_ids:
            yield (
                (*path, "id"),
                f"'{score.id}' is also an item id; scores and items share one set of columns",
            )
        given = [name for name in ("items", "scores", "transform") if getattr(score, name)]
        if len(given) != 1:
            shown = " and ".join(given) if given else "none"
            yield path, f"give exactly one of items, scores or transform (got {shown})"
            continue
        if score.transform is not None:
            yield from _transform(path, score, score_ids)
            continue
        parts = score.items or score.scores
        kind = given[0]
        known = item_ids if kind == "items" else score_ids
        for j, part in enumerate(parts):
            if known is not None and part not in known:
                noun = "item" if kind == "items" else "score"
                yield (*path, kind, j), f"there is no {noun} '{part}'{suggest(part, known)}"
            elif kind == "scores" and part == score.id:
                yield (*path, kind, j), "a score cannot be made of itself"
        yield from _duplicates([((*path, kind, j), part) for j, part in enumerate(parts)])
        if score.method is None:
            yield path, f"a score made of {kind} needs method: mean or sum"
        yield from _missing_rule(path, score, len(parts), kind)
    yield from _cycles(scores)


def _transform(path: tuple, score: Score, score_ids: list[str]) -> Iterator[Finding]:
    assert score.transform is not None
    target = score.transform.of
    if target not in score_ids:
        yield (
            (*path, "transform", "of"),
            f"there is no score '{target}'{suggest(target, score_ids)}",
        )
    elif target == score.id:
        yield (*path, "transform", "of"), "a score cannot transform itself"
    for name in ("method", "min_answered"):
        if getattr(score, name) is not None:
            yield (*path, name), f"{name} does not apply to a transform"
    if score.prorate:
        yield (*path, "prorate"), "prorate does not apply to a transform"


def _missing_rule(path: tuple, score: Score, count: int, kind: str) -> Iterator[Finding]:
    needed = score.min_answered
    if needed is not None and needed > count:
        yield (
            (*path, "min_answered"),
            f"min_answered {needed} is more than the {count} {kind} of this score",
        )
        return
    partial = needed is not None and needed < count
    if score.method == "sum" and partial and not score.prorate:
        yield (
            (*path, "min_answered"),
            f"a sum over fewer than all {count} {kind} is not comparable between people; "
            "set prorate: true (flagged in the output) or use method: mean",
        )
    if score.prorate and score.method != "sum":
        yield (*path, "prorate"), "prorate applies only to method: sum (a mean needs none)"
    elif score.prorate and not partial:
        yield (
            (*path, "prorate"),
            f"prorate has no effect unless min_answered is below the {count} {kind}",
        )


def _cycles(scores: tuple[Score, ...]) -> Iterator[Finding]:
    """A score that (through other scores or transforms) depends on itself cannot be computed."""
    index = {score.id: i for i, score in enumerate(scores)}
    depends = {
        score.id: list(score.scores) + ([score.transform.of] if score.transform else [])
        for score in scores
    }
    reported: set[str] = set()
    for start in depends:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in depends.get(node, ()):
                if nxt == start and len(trail) > 1 and start not in reported:
                    reported.update(trail)
                    cycle = " -> ".join([*trail, start])
                    yield ("scores", index[start], "id"), f"scores depend on each other: {cycle}"
                elif nxt in depends and nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))


def _sms(items: tuple[Item, ...], scales: dict[str, ResponseScale]) -> Iterator[Finding]:
    used = {item.scale for item in items if item.scale in scales}
    too_long = sorted(
        key for key in used if scales[key].step > 0 and scale_points(scales[key]) > SMS_MAX_POINTS
    )
    for key in too_long:
        yield (
            ("sms", "suitable"),
            f"response scale '{key}' has {scale_points(scales[key])} points; an SMS answer "
            f"must be one of at most {SMS_MAX_POINTS}, so the instrument is not SMS-suitable",
        )
