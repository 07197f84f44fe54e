"""Preregistrations: a YAML analysis plan, validated on load, locked by content hash.

    prereg = load_preregistration("examples/preregistrations/assistant-flourishing-rct.yaml")
    problems = check_against(prereg, dataset)        # formulas, outcomes, contrasts vs. the data
    print(aspredicted_text(prereg))

Loading raises `PreregistrationError`, whose `.problems` lists every mistake as
`FILE:LINE: field: message`. Locking lives in `analysis.prereg_lock`.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from patsy import ModelDesc, PatsyError, dmatrix

from instruments.datafile import (
    DataFile,
    DataFileError,
    Problem,
    format_path,
    read_text,
    suggest,
)

from .prereg_schema import MinObserved, MinUsage, ModelSpec, PreregistrationModel


class PreregistrationError(DataFileError):
    """A preregistration failed to load or does not fit the data; `.problems` lists them all."""


@dataclass(frozen=True)
class Preregistration:
    """A validated preregistration with its verbatim source and the hash of its bytes."""

    model: PreregistrationModel
    source_text: str
    source_name: str
    content_hash: str
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False)

    def line_of(self, *path: str | int) -> int:
        """The line where `path` (e.g. `"models", 0, "formula"`) is written."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def problem(self, path: tuple, message: str) -> Problem:
        return Problem(self.source_name, self.line_of(*path), format_path(path), message)


def content_hash(text: str) -> str:
    """SHA-256 of the file's UTF-8 bytes: what a lock freezes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- loading -----------------------------------------------------------------------------------


def load_preregistration(path: str | Path) -> Preregistration:
    """Read and validate the preregistration at `path`."""
    text, problems = read_text(path)
    if text is None:
        raise PreregistrationError(problems)
    return parse_preregistration(text, str(path))


def parse_preregistration(text: str, source_name: str = "<preregistration>") -> Preregistration:
    """Validate preregistration `text`, naming `source_name` in problems."""
    document = DataFile(text, source_name)
    data = document.mapping("the preregistration", "a mapping of sections")
    if data is None:
        raise PreregistrationError(document.problems)
    sections = document.sections(data, PreregistrationModel)
    for path, message in _cross_check(sections):
        document.problem(path, message)
    if document.problems:
        raise PreregistrationError(document.problems)
    return Preregistration(
        model=PreregistrationModel.model_validate(data),
        source_text=text,
        source_name=source_name,
        content_hash=content_hash(text),
        lines=dict(document.doc.lines),
    )


def formula_variables(formula: str) -> tuple[set[str], set[str]]:
    """The variables a patsy formula reads, as (left side, right side).

    `who5_percentage ~ C(arm, Treatment('control')) * week + np.log(x)` reads
    ({who5_percentage}, {arm, week, x}): function names and module attributes are not variables.
    Raises ValueError with patsy's message when the formula does not parse.
    """
    try:
        desc = ModelDesc.from_formula(formula)
    except PatsyError as exc:
        raise ValueError(f"not a valid formula: {exc.message}") from None
    return _names(desc.lhs_termlist), _names(desc.rhs_termlist)


def _names(terms) -> set[str]:
    names: set[str] = set()
    for term in terms:
        for factor in term.factors:
            tree = ast.parse(factor.code, mode="eval")
            called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)} | {
                id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            }
            names |= {
                node.id
                for node in ast.walk(tree)
                if isinstance(node, ast.Name) and id(node) not in called
            }
    return names


def fixed_formula(prereg: PreregistrationModel, spec: ModelSpec) -> str:
    """The model's fixed part with its covariates (or the preregistration's) appended."""
    covariates = spec.covariates if spec.covariates is not None else prereg.covariates
    _, used = formula_variables(spec.formula)
    extra = [name for name in covariates if name not in used]
    return spec.formula if not extra else f"{spec.formula} + {' + '.join(extra)}"


def _cross_check(sections: dict) -> list[tuple[tuple, str]]:
    """Rules relating sections, checked on the sections that passed on their own."""
    found: list[tuple[tuple, str]] = []
    for name in ("hypotheses", "models", "contrasts", "sensitivity"):
        seen: dict[str, int] = {}
        for index, entry in enumerate(sections.get(name) or ()):
            if entry.id in seen:
                found.append(((name, index, "id"), f"duplicate id '{entry.id}'"))
            seen.setdefault(entry.id, index)
    models = {m.id: m for m in sections.get("models") or ()}
    contrasts = {c.id: c for c in sections.get("contrasts") or ()}
    outcomes = sections.get("outcomes")
    declared = set() if outcomes is None else {*outcomes.primary, *outcomes.secondary}
    model_outcome: dict[str, str] = {}
    for index, spec in enumerate(sections.get("models") or ()):
        try:
            lhs, _ = formula_variables(spec.formula)
        except ValueError as exc:
            found.append((("models", index, "formula"), str(exc)))
            continue
        if len(lhs) != 1:
            found.append(
                (("models", index, "formula"), "give exactly one outcome left of '~' (y ~ x)")
            )
            continue
        model_outcome[spec.id] = next(iter(lhs))
        if outcomes is not None and model_outcome[spec.id] not in declared:
            found.append(
                (
                    ("models", index, "formula"),
                    f"outcome '{model_outcome[spec.id]}' is not among outcomes.primary or "
                    "outcomes.secondary",
                )
            )
        if spec.re_formula is not None:
            if not spec.re_formula.strip().startswith("~"):
                found.append((("models", index, "re_formula"), "must start with '~', e.g. ~ week"))
            else:
                try:
                    formula_variables(spec.re_formula)
                except ValueError as exc:
                    found.append((("models", index, "re_formula"), str(exc)))
    if outcomes is not None and model_outcome:
        for index, name in enumerate(outcomes.primary):
            if name not in model_outcome.values():
                found.append(
                    (("outcomes", "primary", index), f"primary outcome '{name}' has no model")
                )
    for index, contrast in enumerate(sections.get("contrasts") or ()):
        if contrast.model not in models:
            found.append(
                (
                    ("contrasts", index, "model"),
                    f"unknown model '{contrast.model}'{suggest(contrast.model, models)}",
                )
            )
    for index, hypothesis in enumerate(sections.get("hypotheses") or ()):
        contrast = contrasts.get(hypothesis.contrast)
        if contrast is None:
            found.append(
                (
                    ("hypotheses", index, "contrast"),
                    f"unknown contrast '{hypothesis.contrast}'"
                    f"{suggest(hypothesis.contrast, contrasts)}",
                )
            )
        elif model_outcome.get(contrast.model, hypothesis.outcome) != hypothesis.outcome:
            found.append(
                (
                    ("hypotheses", index, "outcome"),
                    f"contrast '{contrast.id}' is of model '{contrast.model}', whose outcome is "
                    f"'{model_outcome[contrast.model]}', not '{hypothesis.outcome}'",
                )
            )
    multiplicity = sections.get("multiplicity")
    for index, contrast_id in enumerate(() if multiplicity is None else multiplicity.family):
        if contrast_id not in contrasts:
            found.append(
                (
                    ("multiplicity", "family", index),
                    f"unknown contrast '{contrast_id}'{suggest(contrast_id, contrasts)}",
                )
            )
    arms = sections.get("arms")
    if arms is not None and arms.levels and arms.reference not in arms.levels:
        found.append((("arms", "reference"), f"'{arms.reference}' is not one of arms.levels"))
    return found


# --- checking against a dataset -----------------------------------------------------------------


def check_against(prereg: Preregistration, data: pd.DataFrame | Iterable[str]) -> list[Problem]:
    """Problems that only the data can reveal, each at the line of the offending field.

    With column names only: every variable a formula, outcome, covariate or rule reads must be a
    column. With the data frame itself, also: the arms and occasions named exist in it, and each
    contrast's coefficient names are columns of its model's design matrix.
    """
    frame = data if isinstance(data, pd.DataFrame) else None
    columns = list(frame.columns) if frame is not None else list(data)
    known = set(columns)
    model = prereg.model
    problems: list[Problem] = []

    def need(path: tuple, name: str, what: str = "variable") -> None:
        if name not in known:
            problems.append(
                prereg.problem(path, f"unknown {what} '{name}'{suggest(name, columns)}")
            )

    for part in ("primary", "secondary"):
        for index, name in enumerate(getattr(model.outcomes, part)):
            need(("outcomes", part, index), name)
    for index, name in enumerate(model.covariates):
        need(("covariates", index), name)
    need(("arms", "variable"), model.arms.variable)
    for index, spec in enumerate(model.models):
        lhs, rhs = formula_variables(spec.formula)
        for name in sorted(lhs | rhs):
            need(("models", index, "formula"), name)
        if spec.re_formula:
            for name in sorted(set.union(*formula_variables(spec.re_formula))):
                need(("models", index, "re_formula"), name)
        need(("models", index, "groups"), spec.groups)
        for position, name in enumerate(spec.covariates or ()):
            need(("models", index, "covariates", position), name)
    rule_lists = [(("exclusions",), model.exclusions)] + [
        (("sensitivity", index, "rules"), getattr(entry, "rules", ()))
        for index, entry in enumerate(model.sensitivity)
    ]
    for base, rules in rule_lists:
        for index, rule in enumerate(rules):
            if isinstance(rule, MinObserved | MinUsage):
                need((*base, index, "variable"), rule.variable)
    if frame is not None and not problems:
        problems += _check_values(prereg, frame)
    return problems


def _check_values(prereg: Preregistration, frame: pd.DataFrame) -> list[Problem]:
    model = prereg.model
    problems: list[Problem] = []
    arms = sorted(str(a) for a in frame[model.arms.variable].dropna().unique())
    named = [(("arms", "reference"), model.arms.reference)] + [
        (("arms", "levels", i), level) for i, level in enumerate(model.arms.levels)
    ]
    for path, level in named:
        if level not in arms:
            problems.append(
                prereg.problem(path, f"no arm '{level}' in the data (it has {', '.join(arms)})")
            )
    occasions = set(frame["occasion"].unique()) if "occasion" in frame else set()
    for index, spec in enumerate(model.models):
        for position, key in enumerate(spec.occasions or ()):
            if key not in occasions:
                problems.append(
                    prereg.problem(
                        ("models", index, "occasions", position), f"no occasion '{key}' in the data"
                    )
                )
    if problems:
        return problems
    design: dict[str, list[str]] = {}
    coded = with_reference(frame, model.arms.variable, model.arms.reference)
    for spec in model.models:
        try:
            # The right-hand side alone: a study with no outcome observed yet still has names.
            rhs = ModelDesc([], ModelDesc.from_formula(fixed_formula(model, spec)).rhs_termlist)
            design[spec.id] = list(dmatrix(rhs, coded, return_type="dataframe").columns)
        except Exception as exc:  # patsy raises many types; all mean "cannot build the design"
            index = model.models.index(spec)
            problems.append(prereg.problem(("models", index, "formula"), str(exc)))
    for index, contrast in enumerate(model.contrasts):
        names = design.get(contrast.model)
        for name in contrast.weights if names is not None else ():
            if name not in names:
                problems.append(
                    prereg.problem(
                        ("contrasts", index, "weights", name),
                        f"'{name}' is not a coefficient of model '{contrast.model}' "
                        f"(its coefficients: {', '.join(names)})",
                    )
                )
    return problems


def with_reference(frame: pd.DataFrame, variable: str, reference: str) -> pd.DataFrame:
    """`frame` with `variable` as a categorical whose first level is `reference`, so treatment
    coding compares every arm with the reference arm."""
    levels = sorted(str(v) for v in frame[variable].dropna().unique())
    if reference in levels:
        levels.remove(reference)
        levels.insert(0, reference)
    coded = frame.copy()
    coded[variable] = pd.Categorical(frame[variable].astype(object), categories=levels)
    return coded


def validate_against(prereg: Preregistration, data: pd.DataFrame | Iterable[str]) -> None:
    """Raise `PreregistrationError` if `check_against` finds anything."""
    problems = check_against(prereg, data)
    if problems:
        raise PreregistrationError(problems)
