"""`flourish analysis fit`: fit a linear mixed model to a CSV file and print the estimates.

    flourish analysis fit --data sleepstudy.csv --formula "Reaction ~ Days" \\
        --groups Subject --re-formula "~Days" [--ml] [--engine fast|statsmodels] \\
        [--satterthwaite] [--json]

Prints the fixed effects (estimate, SE, 95% Wald CI, z, p), the random effects' variances,
SDs and correlations, the residual variance, the log-likelihood (REML criterion or ML) and
every warning (convergence, boundary, dropped rows). `--json` prints `LmmResult.to_dict()`.
See docs/analysis.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from analysis.mixed import LmmResult

# Literal rather than analysis.mixed.ENGINES: that module (pandas, scipy, patsy) is imported
# only when a model is fitted, so that every other `flourish` command starts without it.
ENGINES = ("fast", "statsmodels")


@click.group("analysis")
def analysis_group() -> None:
    """Statistical analysis of study data (mixed-effects models)."""


@analysis_group.command("fit")
@click.option("--data", "data_path", required=True, help="CSV file, one row per observation.")
@click.option("--formula", required=True, help='Fixed effects, e.g. "score ~ arm * week".')
@click.option("--groups", required=True, help="Grouping column (e.g. participant).")
@click.option(
    "--re-formula", default=None, help='Random effects, e.g. "~week" (default: intercept).'
)
@click.option("--ml", is_flag=True, help="Maximum likelihood instead of REML.")
@click.option("--engine", type=click.Choice(ENGINES), default="fast", show_default=True)
@click.option(
    "--satterthwaite",
    is_flag=True,
    help="Satterthwaite df with t-based p-values (REML, fast engine); default Wald z.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fit(data_path, formula, groups, re_formula, ml, engine, satterthwaite, as_json) -> None:
    """Fit a linear mixed model (one grouping factor) and print its estimates."""
    import pandas as pd

    from analysis.mixed import fit_lmm

    path = Path(data_path)
    if not path.is_file():
        raise click.ClickException(f"{data_path}: no such file")
    try:
        data = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{data_path}: cannot read as CSV: {exc}") from None
    try:
        result = fit_lmm(
            data,
            formula,
            groups,
            re_formula,
            reml=not ml,
            engine=engine,
            df_method="satterthwaite" if satterthwaite else "wald",
        )
    except ValueError as exc:
        raise click.ClickException(f"{data_path}: {exc}") from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(summary(result))


def summary(result: LmmResult) -> str:
    """A readable summary in the manner of lme4's: model, fit, random and fixed effects."""
    import numpy as np
    import pandas as pd

    criterion = "REML" if result.reml else "ML"
    lines = [
        f"Linear mixed model fit by {criterion} ({result.engine} engine)",
        f"Formula: {result.formula}, random {result.re_formula} | {result.groups}",
        f"Observations: {result.n_obs}, groups ({result.groups}): {result.n_groups}",
        f"Log-likelihood: {result.loglik:.4f}"
        + (f", AIC {result.aic:.1f}, BIC {result.bic:.1f}" if result.aic is not None else ""),
        f"Converged: {'yes' if result.converged else 'NO'}"
        + (", singular (boundary) fit" if result.singular else ""),
        "",
        "Random effects:",
    ]
    corr = result.random_corr
    random = pd.DataFrame({"variance": result.random_sd**2, "sd": result.random_sd})
    for j, term in enumerate(corr.columns[:-1]):
        # lme4's layout: each correlation once, below the diagonal.
        random[f"corr {term}"] = corr[term].where(np.arange(len(corr)) > j)
    random.loc["Residual", ["variance", "sd"]] = [result.residual_var, result.residual_var**0.5]
    lines += [random.to_string(float_format=lambda v: f"{v:.4g}", na_rep=""), "", "Fixed effects:"]
    lines.append(result.fixed.to_string(float_format=lambda v: f"{v:.4g}", na_rep=""))
    if result.warnings:
        lines += ["", "Warnings:"] + [f"- {warning}" for warning in result.warnings]
    return "\n".join(lines)


COMMANDS = [analysis_group]
