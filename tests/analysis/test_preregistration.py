"""Preregistration files: validated on load with FILE:LINE: field: message, checked against a
dataset, locked by content hash in the audit log, and printed as AsPredicted text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from analysis.prereg_lock import (
    LockError,
    audit_confirms,
    lock,
    lock_path,
    read_lock,
    verify_lock,
)
from analysis.prereg_text import QUESTIONS, aspredicted_text
from analysis.preregistration import (
    PreregistrationError,
    check_against,
    content_hash,
    fixed_formula,
    formula_variables,
    load_preregistration,
    parse_preregistration,
)
from study import audit

from .conftest import EXAMPLE_PREREGISTRATION

TEXT = EXAMPLE_PREREGISTRATION.read_text(encoding="utf-8")


def problems_of(text: str) -> list[str]:
    with pytest.raises(PreregistrationError) as caught:
        parse_preregistration(text, "plan.yaml")
    return [str(problem) for problem in caught.value.problems]


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def dataset(arms=("control", "instruct", "reflective")) -> pd.DataFrame:
    """A tiny dataset in the analysis contract's shape: 2 participants per arm, 3 occasions."""
    rows = []
    for a, arm in enumerate(arms):
        for p in range(2):
            for wave, (occasion, week) in enumerate(
                [("baseline", 0), ("weekly", 1), ("weekly", 2)]
            ):
                rows.append(
                    {
                        "participant": f"P-{a}{p}",
                        "arm": arm,
                        "stratum_wellbeing": "low" if p else "high",
                        "stratum_age_band": "under_35",
                        "occasion": occasion,
                        "wave": wave,
                        "week": float(week),
                        "completed": True,
                        "who5_percentage": 40.0 + 4 * week + a,
                        "ucla3_total": 5.0,
                        "usage_sessions": 2.0,
                    }
                )
    return pd.DataFrame(rows)


# --- loading -------------------------------------------------------------------------------------


def test_the_example_loads_with_its_hash_family_and_covariates():
    prereg = load_preregistration(EXAMPLE_PREREGISTRATION)
    model = prereg.model
    assert prereg.content_hash == content_hash(TEXT)
    assert model.outcomes.primary == ("who5_percentage",)
    assert model.family == (
        "reflective_vs_control_slope",
        "instruct_vs_control_slope",
        "reflective_vs_instruct_slope",
    )
    primary = model.model("primary")
    assert primary.re_formula == "~ week" and primary.groups == "participant"
    assert fixed_formula(model, primary) == (
        "who5_percentage ~ arm * week + stratum_wellbeing + stratum_age_band"
    )


def test_an_unknown_key_is_reported_at_its_line_with_the_closest_key():
    text = TEXT.replace("alpha: 0.05", "alhpa: 0.05")
    assert problems_of(text) == [
        f"plan.yaml:{line_of(text, 'alhpa')}: alhpa: unknown key 'alhpa'; did you mean 'alpha'?"
    ]


def test_a_hypothesis_naming_an_unknown_contrast_is_reported_at_its_line():
    text = TEXT.replace("contrast: instruct_vs_control_slope", "contrast: instruct_vs_ctrl_slope")
    line = line_of(text, "instruct_vs_ctrl_slope")
    assert problems_of(text) == [
        f"plan.yaml:{line}: hypotheses[1].contrast: unknown contrast 'instruct_vs_ctrl_slope'; "
        "did you mean 'instruct_vs_control_slope'?"
    ]


def test_every_problem_is_reported_at_once():
    text = (
        TEXT.replace("method: holm", "method: bonferroni")
        .replace("formula: ucla3_total ~ arm * week", "formula: ucla3_total ~ arm * (week")
        .replace("model: loneliness\n", "model: lonely\n")
    )
    problems = problems_of(text)
    assert len(problems) == 3
    assert problems[0].startswith(f"plan.yaml:{line_of(text, 'arm * (week')}: models[1].formula: ")
    assert "not a valid formula" in problems[0]
    assert problems[1] == (
        f"plan.yaml:{line_of(text, 'model: lonely')}: contrasts[3].model: unknown model "
        "'lonely'; did you mean 'loneliness'?"
    )
    assert problems[2] == (
        f"plan.yaml:{line_of(text, 'bonferroni')}: multiplicity.method: 'bonferroni' is not one "
        "of holm, bh, none"
    )


def test_a_model_outcome_must_be_a_declared_outcome_and_match_its_hypotheses():
    text = TEXT.replace("formula: who5_percentage ~ arm * week", "formula: who5_total ~ arm * week")
    problems = problems_of(text)
    line = line_of(text, "who5_total ~")
    assert (
        f"plan.yaml:{line}: models[0].formula: outcome 'who5_total' is not among "
        "outcomes.primary or outcomes.secondary"
    ) in problems
    assert any("primary outcome 'who5_percentage' has no model" in p for p in problems)
    assert any(
        p.startswith("plan.yaml:")
        and "hypotheses[0].outcome: contrast 'reflective_vs_control"
        "_slope' is of model 'primary', whose outcome is 'who5_total'"
        in p
        for p in problems
    )


def test_exclusion_rules_are_checked_by_their_kind():
    text = TEXT.replace(
        "- rule: completed_baseline",
        "- rule: completed_baseline\n  - rule: min_completed\n  - rule: max_fun",
    )
    assert problems_of(text) == [
        f"plan.yaml:{line_of(text, 'rule: min_completed')}: exclusions[1].min: "
        "missing required key 'min'",
        f"plan.yaml:{line_of(text, 'max_fun')}: exclusions[2].rule: 'max_fun' is not one of "
        "completed_baseline, min_completed, min_observed, min_usage",
    ]


def test_formula_variables_ignores_functions_and_modules():
    assert formula_variables("y ~ C(arm, Treatment('control')) * week + np.log(x) + I(z ** 2)") == (
        {"y"},
        {"arm", "week", "x", "z"},
    )
    with pytest.raises(ValueError, match="not a valid formula"):
        formula_variables("y ~ (x")


# --- against a dataset --------------------------------------------------------------------------


def test_the_example_fits_a_dataset_in_the_contract_shape():
    prereg = load_preregistration(EXAMPLE_PREREGISTRATION)
    assert check_against(prereg, dataset()) == []
    # Before any outcome is observed (an export at the start of the study) it fits too.
    empty = dataset().assign(who5_percentage=float("nan"), ucla3_total=float("nan"))
    assert check_against(prereg, empty) == []


def test_variables_missing_from_the_data_are_reported_where_the_plan_names_them():
    prereg = load_preregistration(EXAMPLE_PREREGISTRATION)
    columns = [c for c in dataset().columns if c not in ("ucla3_total", "usage_sessions")]
    found = [str(p) for p in check_against(prereg, columns)]
    source = str(EXAMPLE_PREREGISTRATION)
    assert (
        f"{source}:{line_of(TEXT, 'secondary: [ucla3_total]')}: outcomes.secondary[0]: "
        "unknown variable 'ucla3_total'" in found
    )
    assert (
        f"{source}:{line_of(TEXT, 'formula: ucla3_total')}: models[1].formula: "
        "unknown variable 'ucla3_total'" in found
    )
    assert any(
        "sensitivity[1].rules[1].variable: unknown variable 'usage_sessions'" in p for p in found
    )
    assert len(found) == 3


def test_contrast_coefficients_and_arms_are_checked_against_the_data():
    text = TEXT.replace('{"arm[T.instruct]:week": 1}', '{"arm[T.instruction]:week": 1}')
    prereg = parse_preregistration(text, "plan.yaml")
    found = [str(p) for p in check_against(prereg, dataset())]
    assert len(found) == 1
    assert found[0].startswith(
        f"plan.yaml:{line_of(text, 'T.instruction')}: "
        "contrasts[1].weights.arm[T.instruction]:week: "
        "'arm[T.instruction]:week' is not a coefficient of model 'primary' (its coefficients: "
        "Intercept, arm[T.instruct], arm[T.reflective]"
    )
    missing_arm = check_against(prereg, dataset(arms=("control", "instruct")))
    assert [p.field for p in missing_arm] == ["arms.levels[1]"]
    assert "no arm 'reflective' in the data (it has control, instruct)" in str(missing_arm[0])


# --- locking ------------------------------------------------------------------------------------


def test_lock_records_hash_time_and_actor_in_the_audit_log_and_beside_the_file(
    session, prereg_file
):
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    info, created = lock(session, prereg_file, "cli:alice", now=at)
    session.commit()
    assert created
    assert info.sha256 == content_hash(prereg_file.read_text(encoding="utf-8"))
    assert (info.locked_at, info.locked_by) == (at, "cli:alice")
    stored = json.loads(lock_path(prereg_file).read_text(encoding="utf-8"))
    assert stored["sha256"] == info.sha256 and stored["locked_by"] == "cli:alice"
    assert stored["file"] == prereg_file.name
    [event] = list(audit.events(session))
    assert (event.action, event.actor, event.entity_id) == ("prereg.lock", "cli:alice", info.sha256)
    assert event.details["sha256"] == info.sha256
    assert event.event_hash == info.audit_event
    assert audit.verify_chain(audit.events(session)) == []
    assert audit_confirms(session, read_lock(prereg_file))
    assert verify_lock(prereg_file).status == "locked"


def test_relocking_unchanged_content_is_a_no_op(session, prereg_file):
    first, _ = lock(session, prereg_file, "cli:alice")
    again, created = lock(session, prereg_file, "cli:bob")
    assert not created and again == first
    assert len(list(audit.events(session))) == 1


def test_changed_content_is_detected_and_relocking_it_needs_a_reason(session, prereg_file):
    first, _ = lock(session, prereg_file, "cli:alice")
    prereg_file.write_text(
        prereg_file.read_text(encoding="utf-8").replace("alpha: 0.05", "alpha: 0.01"),
        encoding="utf-8",
    )
    check = verify_lock(prereg_file)
    assert check.status == "changed" and not check.ok and check.lock == first
    with pytest.raises(LockError, match="changed since it was locked"):
        lock(session, prereg_file, "cli:alice")
    assert read_lock(prereg_file) == first
    amended, created = lock(session, prereg_file, "cli:alice", reason="alpha lowered by the DSMB")
    assert created and amended.reason == "alpha lowered by the DSMB"
    assert [entry.sha256 for entry in amended.history] == [first.sha256]
    assert read_lock(prereg_file) == amended
    events = list(audit.events(session))
    assert [e.action for e in events] == ["prereg.lock", "prereg.amend"]
    assert events[1].details["previous_sha256"] == first.sha256
    assert events[1].before_hash == audit.state_hash({"sha256": first.sha256})
    assert verify_lock(prereg_file).status == "locked"


def test_a_lock_file_without_its_audit_event_is_not_confirmed(session, prereg_file):
    info, _ = lock(session, prereg_file, "cli:alice")
    session.rollback()  # the event never reached the log, but the file was written
    assert read_lock(prereg_file) == info
    assert not audit_confirms(session, info)


def test_an_invalid_file_cannot_be_locked(session, prereg_file):
    prereg_file.write_text(TEXT.replace("alpha: 0.05", "alpha: 5"), encoding="utf-8")
    with pytest.raises(PreregistrationError, match="alpha"):
        lock(session, prereg_file, "cli:alice")
    assert not lock_path(prereg_file).exists()
    assert verify_lock(prereg_file).status == "unlocked"


# --- AsPredicted text ---------------------------------------------------------------------------


def test_aspredicted_text_answers_the_eight_questions_and_states_the_lock(session, prereg_file):
    prereg = load_preregistration(prereg_file)
    text = aspredicted_text(prereg, labels={"who5_percentage": "WHO-5 percentage score"})
    assert f"NOT LOCKED (content sha256 {prereg.content_hash})" in text
    for number in range(1, 9):
        assert f"\n{number}) " in text
    assert text.index("1) Data collection") < text.index("8) Other")
    assert QUESTIONS[5].split(".")[0] == "Outliers and Exclusions"
    assert "Primary: who5_percentage: WHO-5 percentage score" in text
    assert "did not complete the 'baseline' occasion are excluded" in text
    assert "Holm correction" in text
    info, _ = lock(session, prereg_file, "cli:alice")
    locked = aspredicted_text(prereg, info)
    assert f"locked: sha256 {info.sha256}" in locked and "by cli:alice" in locked
