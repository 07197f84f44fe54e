"""A preregistration as text for a registry: AsPredicted's eight questions, usable on OSF too."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from .prereg_lock import LockInfo
from .prereg_schema import (
    CompleteCases,
    CompletedOccasion,
    MinCompleted,
    MinObserved,
    MinUsage,
    PreregistrationModel,
)
from .preregistration import Preregistration, fixed_formula

QUESTIONS = (
    "Data collection. Have any data been collected for this study already?",
    "Hypothesis. What's the main question being asked or hypothesis being tested in this study?",
    "Dependent variable. Describe the key dependent variable(s) specifying how they will be "
    "measured.",
    "Conditions. How many and which conditions will participants be assigned to?",
    "Analyses. Specify exactly which analyses you will conduct to examine the main "
    "question/hypothesis.",
    "Outliers and Exclusions. Describe exactly how outliers will be defined and handled, and "
    "your precise rule(s) for excluding observations.",
    "Sample Size. How many observations will be collected or what will determine sample size?",
    "Other. Anything else you would like to pre-register? (e.g., secondary analyses, variables "
    "collected for exploratory purposes, unusual analyses planned?)",
)

_COLLECTED = {
    "no": "No, no data have been collected for this study yet.",
    "yes_not_looked": "Yes, data collection has started, but no data have been looked at.",
    "yes": "Yes, data have been collected and looked at.",
}
_DIRECTION = {"greater": "greater than zero", "less": "less than zero", "two_sided": "non-zero"}
_CORRECTION = {"holm": "Holm", "bh": "Benjamini-Hochberg (false discovery rate)", "none": "no"}


def describe_rule(rule) -> str:
    """One exclusion or per-protocol rule in words."""
    if isinstance(rule, CompletedOccasion):
        return f"participants who did not complete the '{rule.occasion}' occasion are excluded"
    if isinstance(rule, MinCompleted):
        among = f" of {', '.join(rule.occasions)}" if rule.occasions else ""
        return f"participants with fewer than {rule.min} completed occasions{among} are excluded"
    if isinstance(rule, MinObserved):
        return (
            f"participants with fewer than {rule.min} observed values of {rule.variable} "
            "are excluded"
        )
    if isinstance(rule, MinUsage):
        arms = f" in arm(s) {', '.join(rule.arms)}" if rule.arms else ""
        return f"participants{arms} whose total {rule.variable} is below {rule.min:g} are excluded"
    raise TypeError(f"not a rule: {rule!r}")


def aspredicted_text(
    prereg: Preregistration,
    lock: LockInfo | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    width: int = 88,
) -> str:
    """The preregistration as AsPredicted's numbered answers, headed by title, authors and lock.

    `labels` describes variables (e.g. from the codebook: instrument, score and how it is
    computed); a variable without one is named as it is.
    """
    model = prereg.model
    labels = labels or {}
    answers = [
        _data_collection(model),
        "\n".join(f"{h.id}: {h.text}" for h in model.hypotheses),
        _dependent(model, labels),
        _conditions(model),
        _analyses(prereg),
        _exclusions(model),
        f"{model.sample_size.target} participants. {model.sample_size.rationale}",
        _other(model, labels),
    ]
    head = [model.title, "Authors: " + "; ".join(_author(a) for a in model.authors)]
    if lock is None:
        head.append(f"NOT LOCKED (content sha256 {prereg.content_hash})")
    else:
        state = "locked" if lock.sha256 == prereg.content_hash else "CHANGED SINCE LOCKED"
        head.append(
            f"{state}: sha256 {lock.sha256}, {lock.locked_at.isoformat()} by {lock.locked_by}"
        )
    out = ["\n".join(head), ""]
    for number, (question, answer) in enumerate(zip(QUESTIONS, answers, strict=True), 1):
        out.append(f"{number}) {question}")
        for paragraph in answer.split("\n"):
            out.append(
                textwrap.fill(paragraph, width, subsequent_indent="   ", initial_indent="   ")
            )
        out.append("")
    return "\n".join(out)


def _author(author) -> str:
    return author.name + (f" ({author.affiliation})" if author.affiliation else "")


def _data_collection(model: PreregistrationModel) -> str:
    text = _COLLECTED[model.data_status.collected]
    return f"{text} {model.data_status.note}" if model.data_status.note else text


def _variable(name: str, labels: Mapping[str, str]) -> str:
    return f"{name}: {labels[name]}" if name in labels else name


def _dependent(model: PreregistrationModel, labels: Mapping[str, str]) -> str:
    lines = [f"Primary: {_variable(n, labels)}" for n in model.outcomes.primary]
    lines += [f"Secondary: {_variable(n, labels)}" for n in model.outcomes.secondary]
    return "\n".join(lines)


def _conditions(model: PreregistrationModel) -> str:
    arms = model.arms
    if not arms.levels:
        return (
            f"Participants are allocated to arms (variable {arms.variable}); every arm is "
            f"compared with the reference arm, {arms.reference}."
        )
    return (
        f"{len(arms.levels)} conditions: {', '.join(arms.levels)} (variable {arms.variable}); "
        f"every arm is compared with the reference arm, {arms.reference}."
    )


def _analyses(prereg: Preregistration) -> str:
    model = prereg.model
    lines = []
    for spec in model.models:
        random = spec.re_formula or "~ 1"
        rows = []
        if spec.occasions:
            rows.append(f"occasions {', '.join(spec.occasions)}")
        if spec.max_week is not None:
            rows.append(f"weeks up to {spec.max_week:g}")
        lines.append(
            f"Model {spec.id}: linear mixed-effects model {fixed_formula(model, spec)}, random "
            f"effects {random} by {spec.groups}, fitted by {'REML' if spec.reml else 'ML'}"
            + (f" on {'; '.join(rows)}" if rows else "")
            + "."
            + (f" {spec.description}" if spec.description else "")
        )
    for contrast in model.contrasts:
        combination = " ".join(
            f"{'+' if w >= 0 else '-'} {abs(w):g}*{name}" for name, w in contrast.weights.items()
        ).lstrip("+ ")
        lines.append(f"Contrast {contrast.id} (model {contrast.model}): {combination}.")
    for h in model.hypotheses:
        lines.append(
            f"{h.id} is supported if contrast {h.contrast} is {_DIRECTION[h.direction]} "
            f"at alpha {model.alpha:g}"
            + (" (one-sided test)." if h.direction != "two_sided" else " (two-sided test).")
        )
    lines.append(
        f"Multiplicity: {_CORRECTION[model.multiplicity.method]} correction over "
        f"{', '.join(model.family)}."
    )
    lines.append(
        f"Missing data: all available observations ({model.missing_data.assumption} assumed)."
        + (f" {model.missing_data.note}" if model.missing_data.note else "")
    )
    for entry in model.sensitivity:
        if isinstance(entry, CompleteCases):
            what = "complete cases (participants with every occasion of the model's outcome)"
        else:
            what = "per protocol: " + "; ".join(describe_rule(rule) for rule in entry.rules)
        lines.append(
            f"Sensitivity {entry.id}: {what}."
            + (f" {entry.description}" if entry.description else "")
        )
    return "\n".join(lines)


def _exclusions(model: PreregistrationModel) -> str:
    lines = [describe_rule(rule).capitalize() + "." for rule in model.exclusions]
    if not lines:
        lines.append("No participant is excluded.")
    if model.outliers:
        lines.append(model.outliers)
    return "\n".join(lines)


def _other(model: PreregistrationModel, labels: Mapping[str, str]) -> str:
    lines = []
    if model.covariates:
        covariates = ", ".join(_variable(n, labels) for n in model.covariates)
        lines.append(f"Covariates in every model unless it says otherwise: {covariates}.")
    if model.other:
        lines.append(model.other)
    return "\n".join(lines) or "Nothing else."
