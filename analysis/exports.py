"""Writing an analysis dataset out: CSV, Parquet, SPSS and Stata, a codebook and metadata.

    result = write_export(data, codebook, out_dir, formats=("csv", "sav"), meta=ExportMeta(...))
    result.sha256        # the data snapshot: SHA-256 of the canonical CSV

Every export writes the canonical CSV (the reference copy, in Psych-DS's `data/` directory, named
`study-<slug>_data.csv`), the codebook (CSV and Markdown), a Frictionless `datapackage.json`
(table schema, hashes of every file) and a Psych-DS `dataset_description.json`
(`variableMeasured` for every column), plus whichever of Parquet, SPSS .sav and Stata .dta was
asked for. The CSV is canonical: columns in dataset order, rows as assembled, missing values
empty, floats in their shortest exact form, `\\n` line ends, UTF-8; so the same data always has
the same hash, whichever machine exported it.

In SPSS and Stata, categorical text columns (arm, strata, occasion, status, kind) are numeric
codes with value labels, booleans are 0/1 labelled no/yes, and every column has its variable
label. Stata names longer than 32 characters are shortened as the codebook's `stata_name` says.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat

from .codebook import STATA_LABEL_LIMIT, Codebook

FORMATS = ("csv", "parquet", "sav", "dta")
CODEBOOK_CSV = "codebook.csv"
CODEBOOK_MD = "codebook.md"
DATAPACKAGE = "datapackage.json"
PSYCH_DS = "dataset_description.json"
_MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
}


@dataclass(frozen=True)
class ExportMeta:
    """What the metadata says about the dataset as a whole."""

    slug: str
    title: str
    description: str
    created_at: datetime
    software: dict[str, str] = field(default_factory=dict)
    license: str = ""


@dataclass(frozen=True)
class ExportResult:
    files: dict[str, Path]
    sha256: str
    rows: int
    columns: int


def canonical_csv(data: pd.DataFrame) -> bytes:
    """The dataset as canonical CSV bytes (see the module docstring)."""
    return data.to_csv(index=False, lineterminator="\n", na_rep="").encode("utf-8")


def snapshot_hash(data: pd.DataFrame) -> str:
    """SHA-256 of the canonical CSV: identifies this exact data in reports and metadata."""
    return hashlib.sha256(canonical_csv(data)).hexdigest()


def data_file_name(slug: str) -> str:
    """Psych-DS's keyword file name: `study-<slug without hyphens>_data.csv`."""
    return f"study-{re.sub(r'[^A-Za-z0-9]', '', slug)}_data.csv"


def write_export(
    data: pd.DataFrame,
    codebook: Codebook,
    out_dir: str | Path,
    formats: tuple[str, ...] = FORMATS,
    *,
    meta: ExportMeta,
) -> ExportResult:
    """Write `data` in `formats` (the CSV always) with codebook and metadata into `out_dir`."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}; use {', '.join(FORMATS)}")
    if codebook.names != list(data.columns):
        raise ValueError("the codebook does not describe the dataset's columns in order")
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    content = canonical_csv(data)
    files = {"csv": out / "data" / data_file_name(meta.slug)}
    files["csv"].write_bytes(content)
    stem = out / meta.slug
    if "parquet" in formats:
        files["parquet"] = stem.with_suffix(".parquet")
        write_parquet(data, codebook, files["parquet"], meta)
    if "sav" in formats:
        files["sav"] = stem.with_suffix(".sav")
        write_sav(data, codebook, files["sav"])
    if "dta" in formats:
        files["dta"] = stem.with_suffix(".dta")
        write_dta(data, codebook, files["dta"])
    (out / CODEBOOK_CSV).write_text(codebook.to_csv(), encoding="utf-8")
    (out / CODEBOOK_MD).write_text(codebook.to_markdown(f"Codebook: {meta.title}"), "utf-8")
    sha = hashlib.sha256(content).hexdigest()
    package = datapackage(data, codebook, files, out, meta, sha)
    (out / DATAPACKAGE).write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")
    description = psych_ds_description(codebook, files["csv"].relative_to(out), meta, sha)
    (out / PSYCH_DS).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    files |= {
        "codebook_csv": out / CODEBOOK_CSV,
        "codebook_md": out / CODEBOOK_MD,
        "datapackage": out / DATAPACKAGE,
        "psych_ds": out / PSYCH_DS,
    }
    return ExportResult(files, sha, len(data), len(data.columns))


def read_csv(path: str | Path) -> pd.DataFrame:
    """An exported CSV read back with its columns' types from the `datapackage.json` of the
    export it belongs to (text stays text: a consent version "1.0" is not the number 1)."""
    path = Path(path)
    package_path = path.parent.parent / DATAPACKAGE
    if not package_path.exists():
        return pd.read_csv(path)
    package = json.loads(package_path.read_text(encoding="utf-8"))
    resource = next(
        (r for r in package["resources"] if (package_path.parent / r["path"]) == path), None
    )
    if resource is None:
        return pd.read_csv(path)
    fields = resource["schema"]["fields"]
    text = {f["name"]: str for f in fields if f["type"] == "string"}
    frame = pd.read_csv(
        path, dtype=text, keep_default_na=False, na_values={f["name"]: [""] for f in fields}
    )
    for f in fields:
        if f["type"] == "string":
            frame[f["name"]] = frame[f["name"]].where(frame[f["name"]] != "", None)
    return frame


# --- the binary formats -------------------------------------------------------------------------


def write_parquet(data: pd.DataFrame, codebook: Codebook, path: Path, meta: ExportMeta) -> None:
    """Parquet with each column's label and units in its field metadata."""
    table = pa.Table.from_pandas(data, preserve_index=False)
    fields = []
    for column in table.schema:
        variable = codebook.variable(column.name)
        fields.append(column.with_metadata({"label": variable.label, "units": variable.units}))
    schema = pa.schema(fields, metadata={"flourish.study": meta.slug, "flourish.title": meta.title})
    pq.write_table(table.cast(schema), path)


def coded(data: pd.DataFrame, codebook: Codebook) -> pd.DataFrame:
    """Categorical text as numeric codes and booleans as 0/1, for SPSS and Stata."""
    frame = data.copy()
    for variable in codebook.variables:
        column = frame[variable.name]
        if variable.type == "boolean":
            frame[variable.name] = column.astype(float)
        elif variable.codes:
            to_code = {value: code for code, value in variable.codes.items()}
            frame[variable.name] = column.astype(object).map(to_code).astype(float)
        elif variable.type == "string":
            frame[variable.name] = column.astype(object).where(column.notna(), "")
    return frame


def _value_labels(codebook: Codebook) -> dict[str, dict[float, str]]:
    return {
        v.name: {float(code): value for code, value in v.codes.items()}
        for v in codebook.variables
        if v.codes
    }


def write_sav(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    """SPSS .sav with variable labels, value labels and measurement levels."""
    measure = {
        v.name: "nominal" if v.codes or v.type == "string" else "scale" for v in codebook.variables
    }
    pyreadstat.write_sav(
        coded(data, codebook),
        str(path),
        column_labels=[v.label for v in codebook.variables],
        variable_value_labels=_value_labels(codebook),
        variable_measure=measure,
    )


def write_dta(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    """Stata .dta (version 15) with Stata names, labels cut to 80 characters, value labels."""
    names = {v.name: v.stata_name for v in codebook.variables}
    frame = coded(data, codebook).rename(columns=names)
    labels = {names[name]: codes for name, codes in _value_labels(codebook).items()}
    pyreadstat.write_dta(
        frame,
        str(path),
        column_labels=[v.label[:STATA_LABEL_LIMIT] for v in codebook.variables],
        variable_value_labels=labels,
        version=15,
    )


# --- metadata -----------------------------------------------------------------------------------

_FRICTIONLESS_TYPES = {"string": "string", "integer": "integer", "number": "number",
                       "boolean": "boolean"}  # fmt: skip


def datapackage(
    data: pd.DataFrame,
    codebook: Codebook,
    files: dict[str, Path],
    out: Path,
    meta: ExportMeta,
    sha: str,
) -> dict:
    """A Frictionless tabular data package: the CSV with its table schema, the other files."""
    fields = []
    for v in codebook.variables:
        entry = {"name": v.name, "type": _FRICTIONLESS_TYPES[v.type], "title": v.label}
        description = "; ".join(part for part in (v.scoring, v.citation) if part)
        if description:
            entry["description"] = description
        if v.units:
            entry["units"] = v.units
        if v.type == "boolean":
            entry |= {"trueValues": ["True"], "falseValues": ["False"]}
        if v.values:
            entry["constraints"] = {"enum": list(v.values)}
        fields.append(entry)
    schema: dict = {"fields": fields, "missingValues": [""]}
    key = [c for c in ("participant", "occasion", "wave") if c in data.columns]
    if len(key) == 3 and not data.duplicated(subset=key).any():
        schema["primaryKey"] = key
    resources = [
        {
            "name": "data",
            "path": files["csv"].relative_to(out).as_posix(),
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": _MEDIA["csv"],
            "encoding": "utf-8",
            "hash": f"sha256:{sha}",
            "bytes": files["csv"].stat().st_size,
            "schema": schema,
        }
    ]
    for fmt in ("parquet", "sav", "dta"):
        if fmt in files:
            resources.append(
                {
                    "name": f"data-{fmt}",
                    "path": files[fmt].relative_to(out).as_posix(),
                    "format": fmt,
                    "mediatype": _MEDIA[fmt],
                    "hash": "sha256:" + hashlib.sha256(files[fmt].read_bytes()).hexdigest(),
                    "bytes": files[fmt].stat().st_size,
                }
            )
    package = {
        "profile": "tabular-data-package",
        "name": meta.slug,
        "title": meta.title,
        "description": meta.description,
        "created": meta.created_at.isoformat(),
        "resources": resources,
        "flourish": {"snapshot_sha256": sha, "software": meta.software, "codebook": CODEBOOK_CSV},
    }
    if meta.license:
        package["licenses"] = [{"name": meta.license}]
    return package


def psych_ds_description(codebook: Codebook, csv_path: Path, meta: ExportMeta, sha: str) -> dict:
    """Psych-DS's `dataset_description.json`: schema.org Dataset with every column described."""
    variables = []
    for v in codebook.variables:
        entry = {"@type": "PropertyValue", "name": v.name, "description": v.label}
        if v.units:
            entry["unitText"] = v.units
        if v.values:
            entry["valueReference"] = [
                {"@type": "PropertyValue", "value": value, "name": meaning or value}
                for value, meaning in v.values.items()
            ]
        if v.citation:
            entry["measurementTechnique"] = f"{v.instrument}: {v.scoring}. {v.citation}"
        variables.append(entry)
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": meta.title,
        "description": meta.description,
        "identifier": meta.slug,
        "dateCreated": meta.created_at.isoformat(),
        "variableMeasured": variables,
        "distribution": [
            {
                "@type": "DataDownload",
                "contentUrl": csv_path.as_posix(),
                "encodingFormat": "text/csv",
                "sha256": sha,
            }
        ],
    }
