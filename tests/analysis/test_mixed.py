"""`fit_lmm`'s contract: data handling, errors, warnings and the JSON form of a result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.mixed import fit_lmm, relative_cholesky_diagonal, singularity_warnings

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"


@pytest.fixture(scope="module")
def sleepstudy():
    return pd.read_csv(REFERENCE / "sleepstudy.csv")


def test_statsmodels_boundary_warning_on_a_small_scale_is_checked_not_trusted(sleepstudy):
    # Reaction in seconds: lme4's variances divided by 10^6, var(Days) = 3.5e-5, below the
    # 0.01 at which statsmodels warns "MLE may be on the boundary". The fit is not singular.
    seconds = sleepstudy.assign(Reaction=sleepstudy["Reaction"] / 1000)

    fit = fit_lmm(seconds, "Reaction ~ Days", "Subject", "~Days", engine="statsmodels")

    assert fit.random_cov.loc["Days", "Days"] == pytest.approx(35.0717e-6, rel=1e-3)
    assert not fit.singular and fit.converged
    [warning] = fit.warnings
    assert warning.startswith("statsmodels: The MLE may be on the boundary")
    assert "not confirmed" in warning


def test_a_perfectly_correlated_random_effect_is_reported_as_singular():
    cov = np.array([[4.0, 2.0], [2.0, 1.0]])  # correlation exactly 1

    assert relative_cholesky_diagonal(cov, residual_var=1.0) == pytest.approx([2.0, 0.0])
    [warning] = singularity_warnings(cov, 1.0, ["Intercept", "week"])
    assert "'week' is a linear function of 'Intercept' (correlation +/-1)" in warning


def test_relative_cholesky_diagonal_is_the_cholesky_factors():
    cov = np.array([[612.1, 9.6], [9.6, 35.07]])

    expected = np.diag(np.linalg.cholesky(cov / 654.94))
    np.testing.assert_allclose(relative_cholesky_diagonal(cov, 654.94), expected)
    assert singularity_warnings(cov, 654.94, ["Intercept", "Days"]) == []


def test_rows_with_missing_values_are_left_out_and_reported(sleepstudy):
    holes = sleepstudy.copy()
    holes.loc[[0, 5, 17], "Reaction"] = np.nan
    holes.loc[[40], "Days"] = np.nan

    fit = fit_lmm(holes, "Reaction ~ Days", "Subject", "~Days")

    assert fit.n_obs == 176
    assert "data: 4 rows with missing values were left out" in fit.warnings


def test_factor_levels_are_those_of_the_modelled_rows(sleepstudy):
    # A level present only on rows with a missing outcome must not become an empty column.
    data = sleepstudy.assign(site=np.where(sleepstudy["Days"] < 5, "a", "b"))
    data.loc[data["Subject"] == 308, "site"] = "c"
    data.loc[data["Subject"] == 308, "Reaction"] = np.nan

    fit = fit_lmm(data, "Reaction ~ Days + site", "Subject", "~Days")

    assert list(fit.fixed.index) == ["Intercept", "site[T.b]", "Days"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formula": "Reaction ~ Dayz"}, "unknown column 'Dayz'"),
        ({"groups": "subject"}, "unknown grouping column 'subject'"),
        ({"re_formula": "~days"}, "unknown column 'days'"),
        ({"engine": "lme4"}, "unknown engine 'lme4'"),
        ({"df_method": "kr"}, "unknown df_method 'kr'"),
        ({"df_method": "satterthwaite", "reml": False}, "Satterthwaite df are available"),
        ({"formula": "Reaction ~ Days + I(2 * Days)"}, "rank deficient"),
    ],
)
def test_errors_name_the_problem(sleepstudy, kwargs, message):
    arguments = {"formula": "Reaction ~ Days", "groups": "Subject", "re_formula": "~Days"}

    with pytest.raises(ValueError, match=message):
        fit_lmm(sleepstudy, **{**arguments, **kwargs})


def test_to_dict_is_json_with_every_part_of_the_fit(sleepstudy):
    fit = fit_lmm(sleepstudy, "Reaction ~ Days", "Subject", "~Days", reml=False)

    data = json.loads(json.dumps(fit.to_dict()))

    assert data["criterion"] == "ML" and data["engine"] == "fast"
    assert set(data["fixed_effects"]["Days"]) == {
        "estimate", "se", "ci_lower", "ci_upper", "statistic", "df", "p"
    }  # fmt: skip
    assert data["random_effects"]["terms"] == ["Intercept", "Days"]
    assert data["random_effects"]["covariance"][1][0] == data["random_effects"]["covariance"][0][1]
    assert data["random_effects"]["sd"]["Days"] == pytest.approx(
        data["random_effects"]["variance"]["Days"] ** 0.5
    )
    assert (data["n_obs"], data["n_groups"], data["n_params"]) == (180, 18, 6)
    assert data["aic"] == pytest.approx(-2 * data["loglik"] + 12)
    assert data["converged"] is True and data["singular"] is False and data["warnings"] == []


def test_a_frame_with_a_repeated_index_is_fitted_row_by_row(sleepstudy):
    stacked = sleepstudy.set_axis([0] * len(sleepstudy))  # e.g. after pd.concat of pieces

    fit = fit_lmm(stacked, "Reaction ~ Days", "Subject", "~Days")

    assert fit.n_obs == 180
    assert fit.loglik == pytest.approx(-871.8141, rel=1e-3)  # lme4's REML logLik

