"""The report as a PDF: the same header, results, deviations and figures as the HTML.

fpdf2 lays out the text; matplotlib draws the figures from the same tables the HTML's plotly
figures use. Core PDF fonts cover Latin-1 only, so other characters are transliterated.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: render to PNG only

import matplotlib.pyplot as plt
from fpdf import FPDF

from .report import ReportContent

_REPLACEMENTS = {"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2264": "<=", "\u2265": ">="}
_REPLACEMENTS |= {"\u00d7": "x", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}


def latin1(text: str) -> str:
    for old, new in _REPLACEMENTS.items():
        text = text.replace(old, new)
    return text.encode("latin-1", "replace").decode("latin-1")


class _Pdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.report_title = title
        self.set_auto_page_break(auto=True, margin=15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 8, latin1(f"{self.report_title[:90]} - page {self.page_no()}"), align="C")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font("Helvetica", "B", 13)
        self.multi_cell(0, 7, latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=9)

    def para(self, text: str, style: str = "") -> None:
        self.set_font("Helvetica", style, 9)
        self.multi_cell(0, 5, latin1(text), new_x="LMARGIN", new_y="NEXT")

    def table(self, header: list[str], rows: list[list[str]], widths: list[float]) -> None:
        self.set_font("Helvetica", "B", 8)
        for text, width in zip(header, widths, strict=True):
            self.cell(width, 6, latin1(text), border=1)
        self.ln()
        self.set_font("Helvetica", size=8)
        for row in rows:
            for text, width in zip(row, widths, strict=True):
                self.cell(width, 5, latin1(text)[:48], border=1)
            self.ln()

    def figure(self, fig) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
        plt.close(fig)
        buffer.seek(0)
        self.image(buffer, w=self.epw)


def render_pdf(content: ReportContent) -> bytes:
    """The PDF report's bytes."""
    pdf = _Pdf(content.title)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(0, 8, latin1(content.title), new_x="LMARGIN", new_y="NEXT")
    header = content.header
    status = {"locked": "locked", "unlocked": "NOT LOCKED", "changed": "CHANGED SINCE ITS LOCK"}
    pdf.para(
        f"Preregistration {header['preregistration']} "
        f"({status[header['preregistration_status']]}), SHA-256:"
    )
    pdf.para(header["preregistration_sha256"], "B")
    pdf.para(f"Data snapshot: {header['participants']} participants, {header['rows']} rows; ")
    pdf.para("SHA-256 of the canonical CSV:")
    pdf.para(header["data_sha256"], "B")
    versions = ", ".join(f"{name} {version}" for name, version in header["versions"].items())
    pdf.para(f"Software: {versions}. Generated {header['generated_at']}.")

    results = content.results
    pdf.heading("Preregistered contrasts")
    pdf.para(
        "Confirmatory: contrasts of the confirmatory family of a locked, unchanged "
        "preregistration. Everything else is exploratory."
        if results.confirmatory
        else "EXPLORATORY: the preregistration is not locked or changed since its lock; no "
        "result here is confirmatory."
    )
    rows = [
        [
            r.id,
            r.hypothesis or "",
            f"{r.estimate:.4g}",
            f"{r.se:.4g}",
            f"{r.ci_lower:.4g} to {r.ci_upper:.4g}",
            f"{r.p:.3g}",
            "" if r.p_test is None else f"{r.p_test:.3g}",
            "" if r.p_adjusted is None else f"{r.p_adjusted:.3g}",
            r.label,
        ]
        for r in results.contrasts
    ]
    header_row = ["contrast", "hypothesis", "estimate", "SE", "95% CI", "p", "p test", "adj. p"]
    pdf.table([*header_row, "label"], rows, [48, 29, 15, 13, 30, 13, 13, 13, 17])
    pdf.para(
        "p: two-sided Wald; p test: the hypothesis's test (one-sided where a direction is "
        f"predicted); adj. p: {results.plan.multiplicity} over the confirmatory family."
    )
    pdf.heading("Deviations from the preregistration")
    for deviation in results.deviations or ["None."]:
        pdf.para(f"- {deviation}")
    pdf.heading("Model warnings")
    for warning in results.warnings or ["None."]:
        pdf.para(f"- {warning}")

    pdf.add_page()
    pdf.heading("Trajectories by arm (observed means, 95% CIs; dashed: the primary model)")
    pdf.figure(_trajectory(content))
    pdf.heading("Compliance by wave and arm")
    pdf.figure(_compliance(content))
    pdf.add_page()
    pdf.heading("CONSORT flow")
    consort = content.consort
    pdf.table(
        ["stage", *map(str, consort.columns)],
        [[stage, *map(str, consort.loc[stage])] for stage in consort.index],
        [60] + [30] * len(consort.columns),
    )
    pdf.heading("Reliability per wave")
    if content.reliability.empty:
        pdf.para("The dataset holds scores but no item responses: reliability not computed.")
    else:
        order = {label: i for i, label in enumerate(content.occasion_order)}
        table = content.reliability.sort_values(
            ["instrument", "score", "wave"], key=lambda c: c.map(order) if c.name == "wave" else c
        )
        pdf.table(
            ["instrument", "wave", "score", "statistic", "value"],
            [
                [r.instrument, str(r.wave), r.score, r.statistic, f"{r.value:.3f}"]
                for r in table.itertuples()
            ],
            [35, 35, 35, 30, 25],
        )
    for key, model in results.models.items():
        pdf.heading(f"Model {key}")
        if model.fit is None:  # as the HTML report: the failure is among the deviations
            pdf.para(f"{model.formula}: not fitted (see the deviations).")
            continue
        pdf.para(
            f"{model.formula}; random part {model.spec.re_formula or '~ 1'} by "
            f"{model.spec.groups}; {model.fit.n_obs} observations, {model.fit.n_groups} "
            f"participants; engine {model.fit.engine}."
        )
        fixed = model.fit.fixed
        pdf.table(
            ["term", "estimate", "SE", "p"],
            [[t, f"{r.estimate:.4g}", f"{r.se:.4g}", f"{r.p:.3g}"] for t, r in fixed.iterrows()],
            [100, 30, 30, 30],
        )
    return bytes(pdf.output())


def _trajectory(content: ReportContent):
    fig, ax = plt.subplots(figsize=(8, 4))
    arms = list(dict.fromkeys([*content.trajectory["arm"], *content.fitted["arm"]]))
    colour = {arm: f"C{i}" for i, arm in enumerate(arms)}
    for arm, rows in content.fitted.groupby("arm", sort=False):
        ax.plot(rows["week"], rows["fitted"], "--", color=colour[arm], lw=1, label=f"{arm} (model)")
    for arm, rows in content.trajectory.groupby("arm", sort=False):
        ax.errorbar(
            rows["week"],
            rows["mean"],
            yerr=[rows["mean"] - rows["ci_lower"], rows["ci_upper"] - rows["mean"]],
            marker="o",
            capsize=2,
            color=colour[arm],
            label=str(arm),
        )
    ax.set_xlabel("weeks since enrollment")
    ax.set_ylabel(content.outcome)
    ax.legend()
    return fig


def _compliance(content: ReportContent):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    table = content.compliance
    for arm in table.columns:
        ax.plot(range(len(table)), table[arm], marker="o", label=str(arm))
    ax.set_xticks(range(len(table)), table.index, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share completed")
    ax.legend()
    return fig
