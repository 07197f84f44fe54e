"""The study report: one self-contained HTML file, a PDF, and a replication bundle.

    files = write_report(data, "prereg.yaml", "out/", protocol=protocol)   # protocol optional
    files.html, files.pdf, files.bundle_zip

The report is headed by what makes it checkable: the preregistration's hash (the locked one,
or the file's own with "not locked" in red), the SHA-256 of the data snapshot (the canonical
CSV that is also in the bundle) and the versions of Python, Flourish and the numerical
libraries. Results are labelled confirmatory only when they come from a locked preregistration
that is unchanged since its lock; everything else says exploratory, and every deviation is
listed: the analysis is `analysis.plan.run_plan`'s (through `analysis.report_results`). The
HTML embeds plotly.js itself: it opens offline and fetches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from study.protocol import Protocol

from . import report_figures as figures
from .exports import canonical_csv
from .preregistration import Preregistration, load_preregistration
from .provenance import software_versions
from .report_bundle import write_bundle
from .report_results import ReportResults, results_for_report

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path
    bundle_dir: Path
    bundle_zip: Path
    data_sha256: str


@dataclass
class ReportContent:
    """Everything the HTML and PDF renderers draw from (tables as DataFrames)."""

    title: str
    header: dict
    results: ReportResults
    outcome: str
    trajectory: pd.DataFrame
    fitted: pd.DataFrame  # the primary model's mean trajectory per arm
    consort: pd.DataFrame
    compliance: pd.DataFrame
    reliability: pd.DataFrame
    occasion_order: list[str]
    prereg: Preregistration


def build_content(
    data: pd.DataFrame,
    prereg_path: str | Path,
    *,
    protocol: Protocol | None = None,
    source: str = "",
    engine: str = "fast",
) -> tuple[ReportContent, bytes]:
    """Run the preregistered analysis on `data` and gather what the report shows.

    Returns the content and the canonical CSV bytes the data hash is taken of.
    """
    prereg = load_preregistration(prereg_path)
    csv_bytes = canonical_csv(data)
    results = results_for_report(prereg, prereg_path, data, engine=engine)
    primary = results.primary_contrast()
    primary_model = results.models[primary.model]
    outcome = prereg.model.outcomes.primary[0]
    analysed = primary_model.rows.dropna(subset=[outcome])["participant"].unique()
    header = {
        "preregistration": str(prereg_path),
        "preregistration_sha256": results.prereg_hash,
        "preregistration_status": results.lock_status,
        "data_sha256": results.plan.data_sha256,
        "data_source": source,
        "rows": len(data),
        "participants": int(data["participant"].nunique()),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": software_versions(),
        "engine": engine,
    }
    content = ReportContent(
        title=prereg.model.title,
        header=header,
        results=results,
        outcome=outcome,
        trajectory=figures.trajectory_table(figures_rows(data, primary_model.spec), outcome),
        fitted=figures.fitted_trajectory_table(primary_model, prereg.model.arms.variable),
        consort=figures.consort_table(data, pd.Series(analysed)),
        compliance=figures.compliance_table(data),
        reliability=figures.reliability_table(data, instruments_of(protocol)),
        occasion_order=figures.occasion_order(data),
        prereg=prereg,
    )
    return content, csv_bytes


def instruments_of(protocol: Protocol | None) -> list:
    return [] if protocol is None else list(protocol.instruments.values())


def figures_rows(data: pd.DataFrame, spec) -> pd.DataFrame:
    """The primary model's occasions (all occasions when it names none)."""
    return data if spec.occasions is None else data[data["occasion"].isin(spec.occasions)]


def render_html(content: ReportContent) -> str:
    """The report as one HTML document with plotly.js and every figure inlined."""
    plots = {
        "trajectory": figures.trajectory_figure(
            content.trajectory, content.outcome, content.fitted
        ),
        "consort": figures.consort_figure(content.consort),
        "compliance": figures.compliance_figure(content.compliance),
    }
    if not content.reliability.empty:
        plots["reliability"] = figures.reliability_figure(
            content.reliability, content.occasion_order
        )
    html_plots = {
        name: pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}")
        for name, figure in plots.items()
    }
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    template = environment.get_template("report.html")
    return template.render(
        c=content,
        results=content.results,
        plots=html_plots,
        plotly_js=get_plotlyjs(),
        consort=content.consort.to_html(classes="table"),
        compliance=content.compliance.to_html(classes="table", float_format="{:.1%}".format),
        fixed={
            key: model.fit.fixed.to_html(classes="table", float_format="{:.4g}".format)
            for key, model in content.results.models.items()
            if model.fit is not None
        },
        # Completion by occasion is the compliance section's; attrition keeps the totals.
        attrition=pd.DataFrame(content.results.plan.attrition)
        .drop(columns=["by_occasion"], errors="ignore")
        .to_html(classes="table", index=False, float_format="{:.3g}".format),
    )


def write_report(
    data: pd.DataFrame,
    prereg_path: str | Path,
    out_dir: str | Path,
    *,
    protocol: Protocol | None = None,
    source: str = "",
    engine: str = "fast",
) -> ReportFiles:
    """Write `report.html`, `report.pdf`, `bundle/` and `bundle.zip` into `out_dir`."""
    from .report_pdf import render_pdf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    content, csv_bytes = build_content(
        data, prereg_path, protocol=protocol, source=source, engine=engine
    )
    html = out / "report.html"
    html.write_text(render_html(content), encoding="utf-8")
    pdf = out / "report.pdf"
    pdf.write_bytes(render_pdf(content))
    prereg = content.prereg.model
    archive = write_bundle(
        out,
        data_csv=csv_bytes,
        results=content.results,
        prereg_path=prereg_path,
        reference=prereg.arms.reference,
        arm_variable=prereg.arms.variable,
        protocol=protocol,
        data=data,
        header=content.header,
    )
    return ReportFiles(html, pdf, out / "bundle", archive, content.header["data_sha256"])
