"""`flourish analysis fit` on lme4's sleepstudy (../shared/reference/lme4-sleepstudy.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SLEEPSTUDY = Path(__file__).resolve().parents[4] / "shared" / "reference" / "sleepstudy.csv"
ARGS = ("--formula", "Reaction ~ Days", "--groups", "Subject", "--re-formula", "~Days")


@pytest.fixture
def sleepstudy(tmp_path):
    return str(shutil.copy(SLEEPSTUDY, tmp_path / "sleepstudy.csv"))


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_fit_prints_lme4s_ml_estimates_as_json(flourish, sleepstudy, engine):
    result = flourish(
        "analysis", "fit", "--data", sleepstudy, *ARGS, "--ml", "--engine", engine, "--json"
    )

    assert result.exit_code == 0, result.output
    fit = json.loads(result.output)
    # lme4, ML: fixed effects, SEs, variance components, residual variance, logLik.
    assert fit["criterion"] == "ML" and fit["engine"] == engine
    days = fit["fixed_effects"]["Days"]
    assert days["estimate"] == pytest.approx(10.46729, rel=1e-3)
    assert days["se"] == pytest.approx(1.50223, rel=1e-2)
    assert fit["fixed_effects"]["Intercept"]["se"] == pytest.approx(6.63212, rel=1e-2)
    random = fit["random_effects"]
    assert random["terms"] == ["Intercept", "Days"]
    assert random["variance"]["Intercept"] == pytest.approx(565.477, rel=1e-3)
    assert random["variance"]["Days"] == pytest.approx(32.6818, rel=1e-3)
    assert random["covariance"][0][1] == pytest.approx(11.0551, rel=1e-3)
    assert fit["residual_variance"] == pytest.approx(654.946, rel=1e-3)
    assert fit["loglik"] == pytest.approx(-875.9697, rel=1e-3)
    assert fit["converged"] is True and fit["warnings"] == []


def test_fit_prints_a_readable_reml_summary(flourish, sleepstudy):
    result = flourish("analysis", "fit", "--data", sleepstudy, *ARGS)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Linear mixed model fit by REML (fast engine)"
    assert "Log-likelihood: -871.8141" in result.output  # lme4's REML logLik
    assert any(line.split()[:3] == ["Days", "35.07", "5.922"] for line in lines)
    assert any(line.split()[:2] == ["Residual", "654.9"] for line in lines)
    assert any(line.split()[:3] == ["Days", "10.47", "1.546"] for line in lines)


def test_unknown_column_names_the_columns_there_are(flourish, sleepstudy):
    result = flourish(
        "analysis",
        "fit",
        "--data",
        sleepstudy,
        "--formula",
        "Reaction ~ Dayz",
        "--groups",
        "Subject",
    )

    assert result.exit_code == 1
    assert "unknown column 'Dayz'" in result.output
    assert "Reaction, Days, Subject" in result.output


def test_unknown_grouping_column(flourish, sleepstudy):
    result = flourish(
        "analysis", "fit", "--data", sleepstudy, "--formula", "Reaction ~ Days", "--groups", "Subj"
    )

    assert result.exit_code == 1
    assert "unknown grouping column 'Subj'" in result.output


def test_missing_file(flourish, tmp_path):
    missing = str(tmp_path / "nope.csv")

    result = flourish("analysis", "fit", "--data", missing, *ARGS)

    assert result.exit_code == 1
    assert f"{missing}: no such file" in result.output


def test_satterthwaite_df_are_lmertests(flourish, sleepstudy):
    result = flourish("analysis", "fit", "--data", sleepstudy, *ARGS, "--satterthwaite", "--json")

    assert result.exit_code == 0, result.output
    days = json.loads(result.output)["fixed_effects"]["Days"]
    assert days["df"] == pytest.approx(17, rel=1e-2)  # lmerTest, REML


def test_satterthwaite_needs_reml(flourish, sleepstudy):
    result = flourish("analysis", "fit", "--data", sleepstudy, *ARGS, "--satterthwaite", "--ml")

    assert result.exit_code == 1
    assert "Satterthwaite df are available for REML fits" in result.output


def test_the_cli_offers_the_engines_fit_lmm_accepts():
    from analysis.mixed import ENGINES
    from study.cli.analysis import ENGINES as CLI_ENGINES

    assert CLI_ENGINES == ENGINES
