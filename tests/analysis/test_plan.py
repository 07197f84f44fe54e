"""Running the preregistered plan: exclusions, models, contrasts, the family's correction,
sensitivity analyses, attrition, and what is confirmatory and what a deviation.

References: statsmodels' MixedLM (the reference engine) for contrast estimates and SEs,
statsmodels' `multipletests` for Holm and Benjamini-Hochberg, and data simulated with a known
difference in slopes."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.multitest import multipletests

from analysis.mixed import fit_lmm
from analysis.plan import adjust_p, run_plan
from analysis.plan_rules import attrition_by_arm
from analysis.prereg_lock import LockInfo
from analysis.prereg_schema import Contrast
from analysis.preregistration import (
    PreregistrationError,
    load_preregistration,
    parse_preregistration,
)

from .conftest import EXAMPLE_PREREGISTRATION

ARMS = ("control", "instruct", "reflective")
SLOPE_DIFFERENCE = {"control": 0.0, "instruct": 0.0, "reflective": 2.0}  # points per week


def simulated(n_per_arm=20, weeks=12, seed=7) -> pd.DataFrame:
    """WHO-5 percentage with a random intercept and slope per participant; only the
    reflective arm's slope differs from control's, by 2 points a week."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm in ARMS:
        for i in range(n_per_arm):
            code = f"P-{arm[:3].upper()}{i:04d}"
            intercept = 50 + rng.normal(0, 8)
            slope = 0.5 + SLOPE_DIFFERENCE[arm] + rng.normal(0, 0.8)
            lonely = rng.normal(6, 1.2)
            for week in range(weeks + 1):
                rows.append(
                    {
                        "participant": code,
                        "arm": arm,
                        "stratum_wellbeing": "low" if i % 2 else "high",
                        "stratum_age_band": "under_35" if i % 3 else "age_35_plus",
                        "occasion": "baseline" if week == 0 else "weekly",
                        "wave": week,
                        "days": 7.0 * week,
                        "week": float(week),
                        "status": "completed",
                        "completed": True,
                        "withdrawn": False,
                        "who5_percentage": intercept + slope * week + rng.normal(0, 4),
                        "ucla3_total": float(np.clip(np.rint(lonely + rng.normal(0, 0.8)), 3, 9)),
                        "usage_sessions": 0.0 if arm == "control" else float(rng.poisson(2)),
                    }
                )
    return pd.DataFrame(rows)


def missing(data: pd.DataFrame, participant: str, waves) -> pd.DataFrame:
    """`participant` did not complete `waves`: missed, no scores."""
    data = data.copy()
    rows = (data["participant"] == participant) & data["wave"].isin(list(waves))
    data.loc[rows, ["who5_percentage", "ucla3_total"]] = np.nan
    data.loc[rows, "completed"] = False
    data.loc[rows, "status"] = "missed"
    return data


@pytest.fixture(scope="module")
def prereg():
    return load_preregistration(EXAMPLE_PREREGISTRATION)


def lock_of(prereg, **changes) -> LockInfo:
    info = LockInfo(
        sha256=prereg.content_hash,
        locked_at=datetime(2026, 2, 1, tzinfo=UTC),
        locked_by="cli:alice",
        audit_event="e" * 64,
    )
    return replace(info, **changes)


@pytest.fixture(scope="module")
def locked_results(prereg):
    data = missing(simulated(), "P-REF0003", range(4, 13))
    data = missing(data, "P-CON0001", [0])  # no baseline: excluded
    return data, run_plan(prereg, data, locked=lock_of(prereg))


def test_a_locked_unchanged_preregistration_is_confirmatory(locked_results):
    _, results = locked_results
    assert results.status == "confirmatory" and results.lock_status == "locked"
    assert results.deviations == []
    main = results.analysis("main")
    assert {c.label for c in main.contrasts} == {"confirmatory"}
    assert [m.model for m in main.models] == ["primary", "loneliness"]
    assert all(m.fit.converged and m.fallback == "" for m in main.models)


def test_exclusions_are_counted_by_rule_and_arm(locked_results):
    data, results = locked_results
    assert results.exclusions == [
        {
            "rule": "completed_baseline",
            "description": "participants who did not complete the 'baseline' occasion are excluded",
            "excluded": 1,
            "excluded_by_arm": {"control": 1},
        }
    ]
    assert results.analysis("main").n_participants == data["participant"].nunique() - 1


def test_contrasts_match_the_statsmodels_reference_fit(locked_results):
    data, results = locked_results
    kept = data[data["participant"] != "P-CON0001"]
    kept = kept[kept["occasion"].isin(["baseline", "weekly"])].dropna(subset=["who5_percentage"])
    kept = kept.assign(arm=pd.Categorical(kept["arm"], categories=["control", *ARMS[1:]]))
    reference = smf.mixedlm(
        "who5_percentage ~ arm * week + stratum_wellbeing + stratum_age_band",
        kept,
        groups=kept["participant"],
        re_formula="~week",
    ).fit(reml=True)  # lbfgs stops short on these data; statsmodels' default converges
    assert reference.converged
    beta, cov = reference.fe_params, reference.cov_params()
    reflective, instruct = "arm[T.reflective]:week", "arm[T.instruct]:week"
    h1 = results.contrast("reflective_vs_control_slope")
    assert h1.estimate == pytest.approx(beta[reflective], rel=1e-3)
    assert h1.se == pytest.approx(math.sqrt(cov.loc[reflective, reflective]), rel=1e-2)
    h3 = results.contrast("reflective_vs_instruct_slope")
    difference_var = (
        cov.loc[reflective, reflective]
        + cov.loc[instruct, instruct]
        - 2 * cov.loc[reflective, instruct]
    )
    assert h3.estimate == pytest.approx(beta[reflective] - beta[instruct], rel=1e-3)
    assert h3.se == pytest.approx(math.sqrt(difference_var), rel=1e-2)
    # The simulated truth: 2 points a week more in the reflective arm, none in the other.
    assert h1.ci_lower < 2.0 < h1.ci_upper


def test_directional_hypotheses_are_tested_one_sided_and_holm_corrected(locked_results):
    _, results = locked_results
    family = [results.contrast(i) for i in results.family]
    h1, h2, _ = family
    assert (h1.direction, h2.direction) == ("greater", "two_sided")
    assert h1.p_test == pytest.approx(h1.p / 2)  # positive estimate: half the two-sided p
    assert h2.p_test == h2.p
    expected = multipletests([c.p_test for c in family], method="holm")[1]
    assert [c.p_adjusted for c in family] == pytest.approx(list(expected))
    assert h1.supported is True and h1.in_family
    secondary = results.contrast("loneliness_reflective_vs_control_slope")
    assert secondary.p_adjusted is None and secondary.hypothesis is None


@pytest.mark.parametrize("method,reference", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_match_statsmodels(method, reference):
    p = [0.01, 0.04, 0.03, 0.2, 0.001, 0.04]
    assert adjust_p(p, method) == pytest.approx(list(multipletests(p, method=reference)[1]))
    with_failed = adjust_p([0.01, float("nan"), 0.04], method)
    assert math.isnan(with_failed[1])
    assert [with_failed[0], with_failed[2]] == pytest.approx(
        list(multipletests([0.01, 0.04], method=reference)[1])
    )


def test_sensitivity_analyses_refit_on_their_participants(locked_results):
    data, results = locked_results
    complete = results.analysis("complete_cases")
    primary = next(m for m in complete.models if m.model == "primary")
    # P-REF0003 missed weeks 4-12 and P-CON0001 was excluded: 58 of 60 have every WHO-5.
    assert primary.n_participants == 58
    per_protocol = results.analysis("per_protocol")
    usage = (
        data[data["participant"] != "P-CON0001"]
        .groupby("participant")
        .agg(arm=("arm", "first"), sessions=("usage_sessions", "sum"), done=("completed", "sum"))
    )
    expected = usage[
        (usage["done"] >= 10) & ((usage["arm"] == "control") | (usage["sessions"] >= 6))
    ]
    assert per_protocol.n_participants == len(expected)
    h1 = next(c for c in per_protocol.contrasts if c.id == "reflective_vs_control_slope")
    assert h1.p_adjusted is None and h1.p_test == pytest.approx(h1.p / 2)


def test_attrition_by_arm_counts_completions_per_occasion(locked_results):
    _, results = locked_results
    by_arm = {row["arm"]: row for row in results.attrition}
    assert set(by_arm) == set(ARMS)
    reflective = by_arm["reflective"]
    assert reflective["participants"] == 20 and reflective["withdrawn"] == 0
    assert reflective["by_occasion"][0] == {"occasion": "baseline", "wave": 0, "due": 20,
                                            "completed": 20, "rate": 1.0}  # fmt: skip
    assert reflective["by_occasion"][12]["rate"] == pytest.approx(19 / 20)
    assert reflective["retained"] == 19  # P-REF0003 stopped after week 3
    assert by_arm["control"]["by_occasion"][0]["completed"] == 19


def test_occasions_not_yet_due_do_not_count_as_attrition():
    data = simulated(n_per_arm=2, weeks=2)
    data.loc[data["wave"] == 2, ["status", "completed"]] = ["scheduled", False]
    data.loc[(data["participant"] == "P-CON0000") & (data["wave"] == 1), "status"] = "scheduled"
    control = next(row for row in attrition_by_arm(data) if row["arm"] == "control")
    assert [(o["wave"], o["due"], o["completed"]) for o in control["by_occasion"]] == [
        (0, 2, 2),
        (1, 1, 1),
        (2, 0, 0),
    ]
    assert math.isnan(control["by_occasion"][2]["rate"]) and control["retained"] == 0


def test_results_are_plain_json_ready_data(locked_results):
    _, results = locked_results
    data = results.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["status"] == "confirmatory" and data["data_sha256"] in text
    main = data["analyses"][0]
    assert main["models"][0]["fit"]["fixed_effects"]["arm[T.reflective]:week"]["estimate"]


def test_without_a_lock_everything_is_exploratory(prereg):
    results = run_plan(prereg, simulated(), locked=None)
    assert results.status == "exploratory" and results.lock_status == "unlocked"
    assert {c.label for a in results.analyses for c in a.contrasts} == {"exploratory"}
    assert [d.kind for d in results.deviations] == ["lock"]


def test_a_file_changed_since_its_lock_is_exploratory_and_a_deviation(prereg):
    changed = parse_preregistration(prereg.source_text + "\n# edited\n", prereg.source_name)
    results = run_plan(changed, simulated(), locked=lock_of(prereg))
    assert results.status == "exploratory" and results.lock_status == "changed"
    assert "changed after it was locked" in results.deviations[0].message


def test_an_amended_lock_is_confirmatory_and_lists_every_amendment(prereg):
    first = lock_of(prereg, sha256="0" * 64)
    second = lock_of(prereg, sha256="1" * 64, reason="typo in a description")
    amended = lock_of(prereg, reason="alpha corrected", history=(first, second))
    results = run_plan(prereg, simulated(), locked=amended)
    assert results.status == "confirmatory"
    assert [d.kind for d in results.deviations] == ["amendment", "amendment"]
    assert "(000000000000), amended" in results.deviations[0].message
    assert results.deviations[0].message.endswith("(111111111111): typo in a description")
    assert results.deviations[1].message.endswith(f"({prereg.content_hash[:12]}): alpha corrected")


def test_analyses_that_were_not_preregistered_are_exploratory_deviations(prereg):
    extra = Contrast(id="instruct_slope_alone", model="primary",
                     weights={"arm[T.instruct]:week": 1})  # fmt: skip
    results = run_plan(prereg, simulated(), locked=lock_of(prereg), extra_contrasts=[extra])
    assert results.contrast("instruct_slope_alone").label == "exploratory"
    assert results.contrast("reflective_vs_control_slope").label == "confirmatory"
    assert [d.kind for d in results.deviations] == ["not_preregistered"]


def failing_engine(name: str):
    """fit_lmm, except that the `name` engine fails as an optimiser can (fault injection)."""

    def fit(*args, engine="fast", **kwargs):
        if engine == name:
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        return fit_lmm(*args, engine=engine, **kwargs)

    return fit


def test_a_model_that_fails_is_refitted_by_the_other_engine_and_reported(prereg):
    results = run_plan(prereg, simulated(), locked=lock_of(prereg), fit=failing_engine("fast"))
    fallbacks = [d for d in results.deviations if d.kind == "model_fallback"]
    assert len(fallbacks) == 2 * len(results.analyses)  # both models in every analysis
    assert fallbacks[0].message == (
        "main: model primary: fast engine failed: Matrix is not positive definite; "
        "refitted with the statsmodels engine"
    )
    primary, loneliness = results.analysis("main").models
    assert primary.fallback == "refitted with the statsmodels engine"
    assert primary.fit.engine == "statsmodels" and primary.re_formula == "~ week"
    # Loneliness does not change with time here, so the random slope's variance is zero and
    # statsmodels' optimiser does not converge with it: the random intercept model is next.
    assert "statsmodels engine did not converge" in fallbacks[1].message
    assert loneliness.re_formula is None and loneliness.fit.converged
    assert loneliness.fallback == "refitted with a random intercept only (statsmodels)"
    assert any("did not converge" in w for w in results.warnings)


def test_a_model_no_fallback_can_fit_leaves_its_contrasts_missing(prereg):
    def never(*args, **kwargs):
        raise ValueError("singular design")

    results = run_plan(prereg, simulated(), locked=lock_of(prereg), fit=never)
    failed = [d for d in results.deviations if d.kind == "model_failed"]
    assert failed and "random intercept only) failed: singular design" in failed[0].message
    h1 = results.contrast("reflective_vs_control_slope")
    assert math.isnan(h1.estimate) and h1.supported is None
    assert json.dumps(results.to_dict(), allow_nan=False)


def test_a_contrast_a_sensitivity_subset_cannot_estimate_is_missing_and_a_deviation(prereg):
    # Every instruct participant missed the last wave: complete cases keep no one in that arm,
    # so the complete-case model has no instruct terms. The analysis of all data is unharmed.
    data = simulated(n_per_arm=8)
    for code in data.loc[data["arm"] == "instruct", "participant"].unique():
        data = missing(data, code, [12])

    results = run_plan(prereg, data, locked=lock_of(prereg))

    gaps = [d for d in results.deviations if d.kind == "contrast_not_estimable"]
    assert len(gaps) == 2 and all("complete_cases" in d.message for d in gaps)
    primary = {c.id: c for c in results.analyses[0].contrasts}
    assert all(not math.isnan(c.estimate) for c in primary.values())
    [complete] = [a for a in results.analyses if a.id == "complete_cases"]
    assert complete.n_participants == 16  # the 8 control and 8 reflective participants
    estimates = {c.id: c.estimate for c in complete.contrasts}
    assert math.isnan(estimates["instruct_vs_control_slope"])
    assert math.isnan(estimates["reflective_vs_instruct_slope"])
    assert not math.isnan(estimates["reflective_vs_control_slope"])
    assert json.dumps(results.to_dict(), allow_nan=False)


def test_a_plan_that_does_not_fit_the_data_is_refused(prereg):
    with pytest.raises(PreregistrationError, match="unknown variable 'ucla3_total'"):
        run_plan(prereg, simulated().drop(columns=["ucla3_total"]), locked=None)
