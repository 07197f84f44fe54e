"""REDCap data dictionaries: export an instrument as one, import instruments from one.

A data dictionary is a CSV file with REDCap's 18 columns (`REDCAP_COLUMNS`), one row per field,
one form per instrument. Each item becomes one field named by its item id:

* a scale with a label on every point: `radio` (`dropdown` above 12 points), choices
  `1, Label | 2, Label`; a 0/1 scale labelled Yes/No (True/False) in English: `yesno`
  (`truefalse`);
* a whole-number scale of 11 or more points labelled at most at its ends and midpoint (0-10 and
  0-100 ratings): `slider`, labels `left | middle | right`, range in Text Validation Min/Max;
* any other scale: `radio`/`dropdown` listing every point, an unlabelled point labelled with its
  own number (`3, 3`), which import reads back as "no label".

What REDCap has no column for travels in the Field Annotation, one line starting `flourish:`
(see docs/instruments.md, "REDCap data dictionaries"):

    flourish: scale=agree7; reverse; score=autonomy:mean; score=total:sum:min=20:prorate

Instructions and reference period travel as `descriptive` fields annotated `flourish:
instructions` and `flourish: reference_period`. Scores made of other scores and transforms have
no REDCap form and are not exported; an imported form without `score=` annotations gets one
total (the sum of every item) and a note saying REDCap carried no subscales.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from .loader import InstrumentError, parse_instrument
from .schema import IDENTIFIER, Instrument, Item, ResponseScale
from .translations import fallback_chain, pick

REDCAP_COLUMNS = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
NAME, FORM, SECTION, TYPE, LABEL, CHOICES, NOTE, VALIDATION, VMIN, VMAX = range(10)
BRANCHING, ANNOTATION = 11, 17

RECORD_ID = "record_id"
MAX_RADIO_POINTS = 12
MIN_SLIDER_POINTS = 11
ANNOTATION_PREFIX = "flourish:"
BINARY = {"yesno": ("Yes", "No"), "truefalse": ("True", "False")}
UNSUPPORTED = {
    "calc": "a calculated field, not an answer",
    "checkbox": "several answers per field; Flourish items take one answer",
    "descriptive": "display text only",
    "file": "a file upload",
    "notes": "free text; Flourish items are scored on a response scale",
    "sql": "a dynamic query field",
    "signature": "a signature",
}


class RedcapExportError(ValueError):
    """The instrument cannot be written as a REDCap data dictionary; the message says why."""


class RedcapImportError(ValueError):
    """The data dictionary cannot be imported; `.problems` lists every reason, by row."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class RedcapImport:
    """The instruments read from a dictionary and notes on what was skipped or ignored."""

    instruments: tuple[Instrument, ...]
    notes: tuple[str, ...] = field(default=())


# --- export ----------------------------------------------------------------------------------


def export_redcap(instrument: Instrument, language: str = "en", *, record_id: bool = True) -> str:
    """The REDCap data dictionary (CSV text) of `instrument`, worded in `language`.

    Text missing in `language` falls back as for participants (base language, then the
    instrument's first). `record_id` adds the `record_id` field REDCap requires first in a
    project; leave it out to paste the rows into an existing project's dictionary.
    """
    chain = fallback_chain(instrument, language)
    missing = [item.id for item in instrument.items if pick(item.text, chain) is None]
    if missing:
        raise RedcapExportError(
            f"instrument '{instrument.id}' has no text in {language} (or a fallback language) "
            f"for item(s) {', '.join(missing)}; load it with the study's wording file first"
        )
    rows: list[list[str]] = []
    if record_id:
        rows.append(_row(RECORD_ID, instrument.id, "text", "Record ID"))
    for kind, texts in (
        ("instructions", instrument.instructions),
        ("reference_period", instrument.reference_period),
    ):
        text = pick(texts, chain)
        if text is not None:
            name = f"{instrument.id}_{kind}"
            if name in instrument.item_ids:
                raise RedcapExportError(f"the field name {name} is also an item id")
            rows.append(
                _row(name, instrument.id, "descriptive", text[1], annotation=f"flourish: {kind}")
            )
    memberships = _memberships(instrument)
    for item in instrument.items:
        rows.append(_item_row(instrument, item, chain, memberships.get(item.id, [])))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REDCAP_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


_OPTIONAL = {
    "choices": CHOICES,
    "validation": VALIDATION,
    "vmin": VMIN,
    "vmax": VMAX,
    "annotation": ANNOTATION,
}


def _row(name: str, form: str, kind: str, label: str, **optional: str) -> list[str]:
    row = [""] * len(REDCAP_COLUMNS)
    row[NAME], row[FORM], row[TYPE], row[LABEL] = name, form, kind, label
    for key, value in optional.items():
        row[_OPTIONAL[key]] = value
    return row


def _memberships(instrument: Instrument) -> dict[str, list[str]]:
    """Item id -> the `score=` tokens of the item-based scores it belongs to."""
    tokens: dict[str, list[str]] = {}
    position = {item_id: i for i, item_id in enumerate(instrument.item_ids)}
    # Import creates scores in the order it meets them; ordering the tokens the same way makes
    # export(import(export(x))) == export(x).
    with_items = [score for score in instrument.scores if score.items]
    ordered = sorted(with_items, key=lambda score: min(position[i] for i in score.items))
    for score in ordered:
        token = f"score={score.id}:{score.method}"
        if score.min_answered is not None:
            token += f":min={score.min_answered}"
        if score.prorate:
            token += ":prorate"
        if score.kind != "subscale":
            token += f":kind={score.kind}"
        for item_id in score.items:
            tokens.setdefault(item_id, []).append(token)
    return tokens


def _item_row(instrument: Instrument, item: Item, chain: tuple, scores: list[str]) -> list[str]:
    scale = instrument.scale_of(item)
    text = pick(item.text, chain)[1]
    labels = {anchor.value: pick(anchor.label, chain) for anchor in scale.anchors}
    labels = {value: found[1] for value, found in labels.items() if found is not None}
    points = _points(scale)
    annotation = "; ".join(
        [f"flourish: scale={item.scale}", *(["reverse"] if item.reverse else []), *scores]
    )
    where = f"item {item.id} (scale {item.scale})"
    if any(point != int(point) for point in points):
        raise RedcapExportError(f"{where}: REDCap choice codes must be whole numbers")
    for kind, (yes, no) in BINARY.items():
        if points == [0, 1] and {k: v.lower() for k, v in labels.items()} == {
            1: yes.lower(),
            0: no.lower(),
        }:
            return _row(item.id, instrument.id, kind, text, annotation=annotation)
    middle = (scale.min + scale.max) / 2
    ends = {scale.min, scale.max, middle}
    if scale.step == 1 and len(points) >= MIN_SLIDER_POINTS and set(labels) <= ends:
        slider = " | ".join(labels.get(v, "") for v in (scale.min, middle, scale.max))
        return _row(
            item.id,
            instrument.id,
            "slider",
            text,
            choices=slider,
            validation="number",
            vmin=_number(scale.min),
            vmax=_number(scale.max),
            annotation=annotation,
        )
    ordered = [a.value for a in scale.anchors] if set(labels) == set(points) else points
    choices = " | ".join(f"{_number(v)}, {labels.get(v, _number(v))}" for v in ordered)
    kind = "radio" if len(points) <= MAX_RADIO_POINTS else "dropdown"
    return _row(item.id, instrument.id, kind, text, choices=choices, annotation=annotation)


def _points(scale: ResponseScale) -> list[float]:
    count = round((scale.max - scale.min) / scale.step) + 1
    return [_clean(scale.min + i * scale.step) for i in range(count)]


def _clean(value: float) -> float:
    """Integral floats as ints, so 1.0 and 1 compare and print alike."""
    rounded = round(value, 9)
    return int(rounded) if rounded == int(rounded) else rounded


def _number(value: float) -> str:
    return str(_clean(value))


# --- import ----------------------------------------------------------------------------------


def import_redcap(
    csv_text: str,
    *,
    instrument_id: str | None = None,
    form: str | None = None,
    language: str = "en",
    skip_unsupported: bool = False,
) -> list[Instrument]:
    """The instruments of a REDCap data dictionary, one per form (or only `form`).

    Raises `RedcapImportError` listing every problem by row; fields of a type Flourish cannot
    score (calc, checkbox, notes, file, descriptive...) are problems too unless
    `skip_unsupported`, in which case `read_redcap` reports them as notes.
    """
    return list(
        read_redcap(
            csv_text,
            instrument_id=instrument_id,
            form=form,
            language=language,
            skip_unsupported=skip_unsupported,
        ).instruments
    )


def read_redcap(
    csv_text: str,
    *,
    instrument_id: str | None = None,
    form: str | None = None,
    language: str = "en",
    skip_unsupported: bool = False,
) -> RedcapImport:
    """As `import_redcap`, also returning notes on every skipped field and ignored setting."""
    rows = _read_rows(csv_text)
    forms: dict[str, list[tuple[int, list[str]]]] = {}
    for number, row in rows:
        forms.setdefault(row[FORM], []).append((number, row))
    if form is not None:
        if form not in forms:
            raise RedcapImportError([f"no form '{form}' in the dictionary ({', '.join(forms)})"])
        forms = {form: forms[form]}
    if instrument_id is not None and len(forms) != 1:
        raise RedcapImportError(
            [
                f"instrument_id names one instrument but the dictionary has {len(forms)} forms; "
                "choose one with form="
            ]
        )
    reader = _FormReader(language, skip_unsupported)
    instruments = []
    for name, form_rows in forms.items():
        # REDCap's first field is the project's record identifier, not a question.
        first_number, first = rows[0]
        if form_rows[0][0] == first_number and first[TYPE] == "text" and not first[VALIDATION]:
            form_rows = form_rows[1:]
        built = reader.form(instrument_id or name, name, form_rows)
        if built is not None:
            instruments.append(built)
    if reader.problems:
        raise RedcapImportError(reader.problems)
    return RedcapImport(tuple(instruments), tuple(reader.notes))


def _read_rows(csv_text: str) -> list[tuple[int, list[str]]]:
    """(spreadsheet row number, 18 cells) for each field; the header is row 1."""
    records = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))))
    if not records:
        raise RedcapImportError(["the file is empty"])
    header = tuple(cell.strip() for cell in records[0])
    if header != REDCAP_COLUMNS:
        wrong = [
            f"column {i + 1} is '{got}', expected '{want}'"
            for i, (got, want) in enumerate(zip(header, REDCAP_COLUMNS, strict=False))
            if got != want
        ]
        if len(header) != len(REDCAP_COLUMNS):
            wrong.append(f"{len(header)} columns, expected REDCap's {len(REDCAP_COLUMNS)}")
        raise RedcapImportError([f"row 1: not a REDCap data dictionary header: {w}" for w in wrong])
    rows = []
    for index, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(REDCAP_COLUMNS):
            raise RedcapImportError(
                [f"row {index}: {len(record)} cells, expected {len(REDCAP_COLUMNS)}"]
            )
        rows.append((index, [cell.strip() for cell in record]))
    if not rows:
        raise RedcapImportError(["the dictionary has no fields"])
    return rows


@dataclass
class _Annotation:
    scale: str | None = None
    reverse: bool = False
    scores: list[dict] = field(default_factory=list)
    role: str | None = None


def _annotation(text: str, where: str) -> tuple[_Annotation, list[str]]:
    """Read the `flourish:` line of a Field Annotation; other text there is left alone."""
    found = _Annotation()
    problems: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.lower().startswith(ANNOTATION_PREFIX):
            continue
        for token in filter(None, (t.strip() for t in line[len(ANNOTATION_PREFIX) :].split(";"))):
            key, _, value = token.partition("=")
            if token in ("instructions", "reference_period"):
                found.role = token
            elif token == "reverse":
                found.reverse = True
            elif key == "scale" and IDENTIFIER.match(value):
                found.scale = value
            elif key == "score":
                score, problem = _score_token(value)
                if problem:
                    problems.append(f"{where}: annotation '{token}': {problem}")
                else:
                    found.scores.append(score)
            else:
                problems.append(f"{where}: annotation: '{token}' is not understood")
    return found, problems


def _score_token(value: str) -> tuple[dict, str | None]:
    parts = value.split(":")
    if len(parts) < 2 or not IDENTIFIER.match(parts[0]) or parts[1] not in ("mean", "sum"):
        return {}, "expected score=<id>:<mean|sum>[:min=N][:prorate][:kind=total|derived]"
    score: dict = {"id": parts[0], "method": parts[1]}
    for option in parts[2:]:
        if option == "prorate":
            score["prorate"] = True
        elif re.fullmatch(r"min=[1-9]\d*", option):
            score["min_answered"] = int(option[4:])
        elif option in ("kind=total", "kind=derived", "kind=subscale"):
            score["kind"] = option[5:]
        else:
            return {}, f"'{option}' is not a score option"
    return score, None


class _FormReader:
    """Builds one instrument per form, collecting problems and notes across the whole file."""

    def __init__(self, language: str, skip_unsupported: bool) -> None:
        self.language = language
        self.skip_unsupported = skip_unsupported
        self.problems: list[str] = []
        self.notes: list[str] = []

    def form(self, instrument_id: str, form: str, rows: list) -> Instrument | None:
        problems_before = len(self.problems)
        if not IDENTIFIER.match(instrument_id) or len(instrument_id) > 64:
            self.problems.append(
                f"form '{form}': '{instrument_id}' is not a valid instrument id (lowercase "
                "letters, digits and _, starting with a letter); pass instrument_id"
            )
        items, scales, texts, scores = [], {}, {}, {}
        scale_rows: dict[str, int] = {}
        for number, row in rows:
            where = f"row {number} (field {row[NAME]})"
            annotation, problems = _annotation(row[ANNOTATION], where)
            self.problems += problems
            if row[TYPE] == "descriptive" and annotation.role:
                texts[annotation.role] = {self.language: row[LABEL]}
                continue
            scale = self._scale(row, where)
            if scale is None:
                continue
            self._ignored(row, where)
            scale_id = annotation.scale or _scale_id(scale, scales)
            if scale_id in scales and scales[scale_id] != scale:
                self.problems.append(
                    f"{where}: scale '{scale_id}' differs from its definition at row "
                    f"{scale_rows[scale_id]}"
                )
            scales.setdefault(scale_id, scale)
            scale_rows.setdefault(scale_id, number)
            items.append(
                {"id": row[NAME], "text": {self.language: row[LABEL]}, "scale": scale_id}
                | ({"reverse": True} if annotation.reverse else {})
            )
            for score in annotation.scores:
                self._add_to_score(scores, score, row[NAME], where)
        if len(self.problems) > problems_before:
            return None
        if not items:
            self.problems.append(f"form '{form}': no field Flourish can import")
            return None
        return self._instrument(instrument_id, form, items, scales, texts, list(scores.values()))

    def _scale(self, row: list[str], where: str) -> dict | None:
        kind = row[TYPE]
        try:
            if kind in ("radio", "dropdown"):
                return _choice_scale(row[CHOICES], self.language)
            if kind in BINARY:
                yes, no = BINARY[kind]
                labels = [(1, yes), (0, no)]
                return _scale_dict(0, 1, [(v, {self.language: t}) for v, t in labels])
            if kind == "slider":
                return _slider_scale(row, self.language)
            if kind == "text" and row[VALIDATION] == "integer" and row[VMIN] and row[VMAX]:
                return _scale_dict(_parse_number(row[VMIN]), _parse_number(row[VMAX]), [])
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        if kind == "text":
            reason = "free text (only text with integer validation and a min and max is a scale)"
        else:
            reason = UNSUPPORTED.get(kind, "a field type Flourish does not know")
        message = f"{where}: field type '{kind}' is not supported: {reason}"
        if self.skip_unsupported:
            self.notes.append(f"skipped {message}")
        else:
            self.problems.append(message)
        return None

    def _ignored(self, row: list[str], where: str) -> None:
        if row[BRANCHING]:
            self.notes.append(f"{where}: branching logic ignored: {row[BRANCHING]}")
        if row[SECTION]:
            self.notes.append(f"{where}: section header ignored: {row[SECTION]}")

    def _add_to_score(self, scores: dict, score: dict, item_id: str, where: str) -> None:
        known = scores.get(score["id"])
        if known is None:
            label = {self.language: score["id"].replace("_", " ")}
            scores[score["id"]] = {**score, "label": label, "items": [item_id]}
        elif {k: v for k, v in known.items() if k not in ("label", "items")} != score:
            self.problems.append(
                f"{where}: score '{score['id']}' is described differently on another item"
            )
        else:
            known["items"].append(item_id)

    def _instrument(self, instrument_id, form, items, scales, texts, scores) -> Instrument | None:
        if not scores:
            note = (
                "REDCap data dictionaries have no subscales: this total of every item was added "
                "on import. Replace it with the instrument's published scoring."
            )
            scores = [
                {
                    "id": "total" if "total" not in {i["id"] for i in items} else "total_score",
                    "label": {self.language: "Total"},
                    "kind": "total",
                    "items": [item["id"] for item in items],
                    "method": "sum",
                    "interpretation": note,
                }
            ]
        data = {
            "id": instrument_id,
            "name": form.replace("_", " ").strip().capitalize(),
            "short_name": form,
            "version": "imported from REDCap",
            "citation": "Unknown: imported from a REDCap data dictionary. Add the citation.",
            "licence": {
                "name": "unknown",
                "commercial_use": "unknown",
                "notes": "Imported from REDCap; check the instrument's terms of use.",
            },
            "wording": {
                "status": "shipped",
                "source": f"REDCap data dictionary, form {form}",
                "verified_against_official_form": False,
            },
            **texts,
            "languages": [self.language],
            "response_scales": scales,
            "items": items,
            "scores": scores,
            "sms": {"suitable": False, "notes": "Not assessed: imported from REDCap."},
        }
        try:
            return parse_instrument(_dump(data), f"{form} (from REDCap)")
        except InstrumentError as exc:
            self.problems += [f"form '{form}': {problem}" for problem in exc.problems]
            return None


def _choice_scale(choices: str, language: str) -> dict:
    """`1, Label | 2, Label` -> a scale; a label equal to its code means an unlabelled point."""
    pairs = []
    for part in filter(None, (p.strip() for p in choices.split("|"))):
        code, comma, label = part.partition(",")
        if not comma:
            raise ValueError(f"choice '{part}' is not 'code, label'")
        pairs.append((_parse_number(code.strip(), what="choice code"), label.strip()))
    if len(pairs) < 2:
        raise ValueError("a multiple-choice field needs at least two choices")
    values = sorted(v for v, _ in pairs)
    if len(set(values)) != len(values):
        raise ValueError("a choice code is given twice")
    step = _clean(values[1] - values[0])
    low, high = values[0], values[-1]
    expected = [_clean(low + i * step) for i in range(round((high - low) / step) + 1)]
    if values != expected:
        raise ValueError(
            f"choice codes {', '.join(map(_number, values))} are not evenly spaced; a Flourish "
            "response scale has every value from min to max in equal steps"
        )
    anchors = [(v, {language: label}) for v, label in pairs if label and label != _number(v)]
    return _scale_dict(low, high, anchors, step)


def _slider_scale(row: list[str], language: str) -> dict:
    low = _parse_number(row[VMIN]) if row[VMIN] else 0
    high = _parse_number(row[VMAX]) if row[VMAX] else 100
    if low != int(low) or high != int(high) or high <= low:
        raise ValueError(f"slider range {row[VMIN]} to {row[VMAX]} is not whole numbers min < max")
    labels = [p.strip() for p in row[CHOICES].split("|")] if row[CHOICES] else []
    if len(labels) > 3:
        raise ValueError("a slider has at most three labels: left | middle | right")
    positions = {1: [low], 2: [low, high], 3: [low, (low + high) / 2, high]}.get(len(labels), [])
    anchors = []
    for value, label in zip(positions, labels, strict=True):
        if not label:
            continue
        if value != int(value):
            raise ValueError(f"the middle label '{label}' falls between two points of the slider")
        anchors.append((value, {language: label}))
    return _scale_dict(low, high, anchors)


def _scale_dict(low: float, high: float, anchors: list, step: float = 1) -> dict:
    scale: dict = {"min": _clean(low), "max": _clean(high)}
    if step != 1:
        scale["step"] = _clean(step)
    if anchors:
        scale["anchors"] = [{"value": _clean(v), "label": label} for v, label in anchors]
    return scale


def _scale_id(scale: dict, known: dict[str, dict]) -> str:
    for key, existing in known.items():
        if existing == scale:
            return key
    number = len(known) + 1
    while f"scale_{number}" in known:
        number += 1
    return f"scale_{number}"


def _parse_number(text: str, what: str = "number") -> float:
    try:
        return _clean(float(text))
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a number") from None


# --- YAML ------------------------------------------------------------------------------------


def instrument_yaml(instrument: Instrument) -> str:
    """The instrument as a definition file that `instruments.loader` loads back unchanged."""
    return _dump(instrument.model_dump(mode="json", exclude_defaults=True))


def _dump(data: dict) -> str:
    return yaml.safe_dump(_tidy(data), sort_keys=False, allow_unicode=True, width=100)


def _tidy(value):
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tidy(item) for item in value]
    if isinstance(value, float):
        return _clean(value)
    return value
