"""The codebook of an analysis dataset: every variable's type, label, values, units and source.

    codebook = build_codebook(data, protocol)
    codebook.variable("who5_percentage").citation     # the instrument's citation
    codebook.to_csv(); codebook.to_markdown()

Scores are described from the instrument definitions (label, how the score is computed, its
possible range, citation); arms from the protocol; the other columns from the analysis data
contract. Categorical text columns (arm, strata, occasion, status, kind) carry numeric codes for
SPSS and Stata, in protocol order where the protocol defines one, and every variable has a Stata
name of at most 32 characters (`stata_name`; the same as `name` whenever that fits).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pandas as pd

from instruments.catalogue import describe_score
from instruments.schema import Instrument, Score
from study.models.schedule import OCCASION_STATUSES
from study.protocol import Protocol
from study.randomization.design import factor_levels

from .simulate_effects import score_range

STATA_NAME_LIMIT = 32
STATA_LABEL_LIMIT = 80
CODED = ("arm", "occasion", "status", "kind")
BOOLEAN_CODES = {0: "no", 1: "yes"}

_FIXED = {
    "participant": ("string", "Pseudonymous participant code", ""),
    "arm": ("string", "Arm the participant was allocated to", ""),
    "occasion": ("string", "Measurement occasion (schedule key)", ""),
    "wave": ("integer", "Wave number within the occasion's schedule entry (baseline 0)", ""),
    "days": ("number", "Time from enrollment to the occasion's due time", "days"),
    "week": ("number", "Time from enrollment to the occasion's due time (days / 7)", "weeks"),
    "consent_version": ("string", "Version of the consent document in force", ""),
    "status": ("string", "Status of the occasion", ""),
    "completed": ("boolean", "The occasion was completed (every instrument submitted)", ""),
    "kind": ("string", "Kind of occasion (baseline, wave, followup)", ""),
    "withdrawn": ("boolean", "The participant has withdrawn from the study", ""),
    "usage_sessions": (
        "number",
        "Assistant sessions in the 7 days before the occasion",
        "sessions",
    ),
    "usage_turns": ("number", "Assistant turns in the 7 days before the occasion", "turns"),
    "usage_active_minutes": (
        "number",
        "Active minutes with the assistant in the 7 days before the occasion",
        "minutes",
    ),
    "usage_night_share": (
        "number",
        "Share of those sessions started at night (local time)",
        "proportion (0-1)",
    ),
    "usage_mean_session_minutes": (
        "number",
        "Mean session length in the 7 days before the occasion",
        "minutes",
    ),
}
_STATUS_MEANING = {
    "scheduled": "planned, not yet sent",
    "sent": "invitation sent",
    "opened": "survey opened",
    "partial": "some answers saved, not submitted",
    "completed": "submitted",
    "missed": "closed without submission",
    "cancelled": "cancelled (e.g. after withdrawal)",
}


@dataclass(frozen=True)
class Variable:
    """One column. `values` maps each category to its meaning; `codes` maps the numeric codes
    used in SPSS and Stata to the categories (empty for non-categorical columns)."""

    name: str
    type: str
    label: str
    stata_name: str
    units: str = ""
    values: dict[str, str] = field(default_factory=dict)
    codes: dict[int, str] = field(default_factory=dict)
    instrument: str = ""
    citation: str = ""
    scoring: str = ""


@dataclass(frozen=True)
class Codebook:
    variables: tuple[Variable, ...]

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def stata_names(self) -> dict[str, str]:
        """Dataset name -> Stata name, for the variables whose names differ."""
        return {v.name: v.stata_name for v in self.variables if v.stata_name != v.name}

    def labels(self) -> dict[str, str]:
        return {v.name: v.label for v in self.variables}

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for v in self.variables:
            row = asdict(v)
            row["values"] = "; ".join(
                f"{value} = {meaning}" if meaning else value for value, meaning in v.values.items()
            )
            row["codes"] = "; ".join(f"{code} = {value}" for code, value in v.codes.items())
            rows.append(row)
        return pd.DataFrame(rows, columns=list(Variable.__dataclass_fields__))

    def to_csv(self) -> str:
        out = io.StringIO()
        self.to_frame().to_csv(out, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        return out.getvalue()

    def to_markdown(self, title: str = "Codebook") -> str:
        lines = [f"# {title}", "", "| variable | Stata name | type | label | units | values |",
                 "|---|---|---|---|---|---|"]  # fmt: skip
        for _, row in self.to_frame().iterrows():
            cells = [row["name"], row["stata_name"], row["type"], row["label"], row["units"]]
            cells.append(row["values"] or "")
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        scored = [v for v in self.variables if v.instrument]
        if scored:
            lines += ["", "## Scores", ""]
            for v in scored:
                lines += [f"### {v.name}", "", f"{v.label}. Scoring: {v.scoring}."]
                if v.units:
                    lines[-1] += f" Units: {v.units}."
                lines += ["", f"Citation: {v.citation}", ""]
        return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def build_codebook(data: pd.DataFrame, protocol: Protocol | None = None) -> Codebook:
    """The codebook of `data` (an `analysis.dataset.assemble` frame or an export read back)."""
    scores = _score_columns(protocol)
    arms = {arm.key: arm.name for arm in protocol.model.arms} if protocol else {}
    strata = {f.name: f for f in protocol.model.allocation.strata} if protocol else {}
    schedule = (
        [k for k, e in protocol.model.schedule.items() if e.kind != "ema"] if protocol else []
    )
    variables = []
    for name in data.columns:
        column = data[name]
        if name in scores:
            instrument, score = scores[name]
            variables.append(_score_variable(name, instrument, score))
            continue
        kind, label, units = _FIXED.get(name, (_type_of(column), name, ""))
        values: dict[str, str] = {}
        if name == "arm":
            values = _ordered(arms, column)
        elif name == "status":
            values = _ordered({s: _STATUS_MEANING[s] for s in OCCASION_STATUSES}, column)
        elif name == "occasion":
            values = _ordered(dict.fromkeys(schedule, ""), column)
        elif name == "kind":
            values = _ordered(dict.fromkeys(("baseline", "wave", "followup"), ""), column)
        elif name.startswith("stratum_"):
            factor = strata.get(name.removeprefix("stratum_"))
            levels = dict.fromkeys(factor_levels(protocol, factor) if factor else (), "")
            values = _ordered(levels, column)
            label = f"Stratification factor '{name.removeprefix('stratum_')}' at allocation"
            kind = "string"
        codes = {i: value for i, value in enumerate(values, 1)} if values else {}
        if kind == "boolean":
            codes = dict(BOOLEAN_CODES)
        variables.append(Variable(name, kind, label, name, units, values, codes))
    return Codebook(tuple(_with_stata_names(variables)))


def _ordered(known: dict[str, str], column: pd.Series) -> dict[str, str]:
    """The known categories in their order, then any others found in the data, sorted."""
    found = sorted({str(v) for v in column.dropna().unique()} - set(known))
    return {**known, **dict.fromkeys(found, "")}


def _type_of(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "integer"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    return "string"


def _score_columns(protocol: Protocol | None) -> dict[str, tuple[Instrument, Score]]:
    if protocol is None:
        return {}
    return {
        f"{instrument.id}_{score.id}": (instrument, score)
        for instrument in protocol.instruments.values()
        for score in instrument.scores
    }


def score_descriptions(protocol: Protocol) -> dict[str, str]:
    """Each score column's description (label, scoring, units, citation), for texts that name
    variables, such as a preregistration printed for a registry."""
    described = {}
    for name, (instrument, score) in _score_columns(protocol).items():
        v = _score_variable(name, instrument, score)
        described[name] = f"{v.label}, {v.scoring}, {v.units}. {v.citation}"
    return described


def _score_variable(name: str, instrument: Instrument, score: Score) -> Variable:
    label = score.label.get("en") or next(iter(score.label.values()))
    low, high, _ = score_range(instrument, score.id)
    return Variable(
        name=name,
        type="number",
        label=f"{instrument.short_name}: {label}",
        stata_name=name,
        units=f"points ({_number(low)} to {_number(high)})",
        instrument=f"{instrument.name} ({instrument.id}, version {instrument.version})",
        citation=" ".join(instrument.citation.split()),
        scoring=describe_score(score),
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _with_stata_names(variables: Iterable[Variable]) -> list[Variable]:
    """Stata allows names of at most 32 characters: longer ones are cut, and a cut that
    collides with another name gets a numbered suffix."""
    variables = list(variables)
    taken = {v.name for v in variables if _stata_ok(v.name)}
    result = []
    for v in variables:
        if _stata_ok(v.name):
            result.append(v)
            continue
        base = re.sub(r"[^A-Za-z0-9_]", "_", v.name)
        if not re.match(r"[A-Za-z_]", base):
            base = "v_" + base
        candidate = base[:STATA_NAME_LIMIT]
        number = 2
        while candidate in taken:
            suffix = f"_{number}"
            candidate = base[: STATA_NAME_LIMIT - len(suffix)] + suffix
            number += 1
        taken.add(candidate)
        result.append(Variable(**{**asdict(v), "stata_name": candidate}))
    return result


def _stata_ok(name: str) -> bool:
    return (
        len(name) <= STATA_NAME_LIMIT and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None
    )
