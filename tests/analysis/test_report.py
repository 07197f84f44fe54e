"""The study report: self-contained HTML, a PDF, and a bundle that reproduces the estimate.

The data are a simulated study of the example protocol; the preregistration is the example's,
copied so that it can be locked. `reproduce.py` is run in a fresh interpreter and must reach
the report's primary estimate on its own (statsmodels, from the bundle's files only).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.prereg_lock import lock
from analysis.report import software_versions, write_report
from analysis.report_bundle import r_formula, r_name
from analysis.simulate import simulate_study
from analysis.simulate_effects import load_effects
from study.cli import main
from study.protocol import load_protocol

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PREREG = EXAMPLES / "preregistrations" / "assistant-flourishing-rct.yaml"


@pytest.fixture(scope="module")
def study():
    protocol = load_protocol(EXAMPLES / "protocols" / "assistant-flourishing-rct.yaml")
    effects = load_effects(EXAMPLES / "effects" / "assistant-flourishing-rct.yaml", protocol)
    return protocol, simulate_study(protocol, effects, participants=90, seed=21).data


@pytest.fixture(scope="module")
def unlocked_report(study, tmp_path_factory):
    protocol, data = study
    out = tmp_path_factory.mktemp("report")
    prereg = out / "prereg.yaml"
    shutil.copyfile(PREREG, prereg)
    files = write_report(data, prereg, out / "out", protocol=protocol)
    return files, prereg


def pdf_text(pdf: bytes) -> str:
    """The text drawn in a PDF made by fpdf2: its content streams, inflated."""
    parts = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            parts.append(zlib.decompress(match.group(1)).decode("latin-1"))
        except zlib.error:
            continue
    return "".join(parts)


def test_the_html_is_self_contained_and_headed_by_hashes_and_versions(unlocked_report, study):
    files, prereg = unlocked_report
    html = files.html.read_text(encoding="utf-8")
    # Nothing is fetched: no script, stylesheet or image from a URL (plotly.js is inline).
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js itself is embedded
    prereg_hash = hashlib.sha256(prereg.read_bytes()).hexdigest()
    assert prereg_hash in html
    data_csv = (files.bundle_dir / "data.csv").read_bytes()
    assert hashlib.sha256(data_csv).hexdigest() in html
    for name, version in software_versions().items():
        assert f"{name} {version}" in html
    assert {"python", "flourish", "numpy", "pandas", "statsmodels", "scipy"} <= set(
        software_versions()
    )
    for section in ("trajectories", "consort", "compliance", "reliability", "deviations"):
        assert f'id="{section}"' in html
    for figure in ("trajectory", "consort", "compliance", "reliability"):
        assert f'id="fig-{figure}"' in html  # the example effects simulate item answers


def test_without_a_lock_every_result_is_exploratory_and_the_deviation_is_listed(unlocked_report):
    html = unlocked_report[0].html.read_text(encoding="utf-8")
    assert "not locked" in html
    assert 'class="label confirmatory"' not in html
    assert "the preregistration is not locked: every result is exploratory" in html


def test_a_locked_preregistration_makes_its_family_confirmatory(study, tmp_path, session):
    _, data = study
    prereg = tmp_path / "prereg.yaml"
    shutil.copyfile(PREREG, prereg)
    info, _ = lock(session, prereg, "cli:test")
    session.commit()
    files = write_report(data, prereg, tmp_path / "out")
    html = files.html.read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td>(\w+)</td>.*?label (confirmatory|exploratory)", html, re.S)
    labels = dict(rows)
    assert labels["reflective_vs_control_slope"] == "confirmatory"
    assert labels["instruct_vs_control_slope"] == "confirmatory"
    assert labels["reflective_vs_instruct_slope"] == "confirmatory"
    assert info.sha256 in html and "(locked)" in html
    # Editing the file after its lock makes everything exploratory again.
    prereg.write_text(prereg.read_text() + "\n# edited\n")
    html = write_report(data, prereg, tmp_path / "out2").html.read_text(encoding="utf-8")
    assert "changed after it was locked" in html and 'label confirmatory"' not in html


def test_the_pdf_has_pages_and_the_same_header(unlocked_report):
    files, prereg = unlocked_report
    pdf = files.pdf.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 3
    text = pdf_text(pdf)
    data_hash = hashlib.sha256((files.bundle_dir / "data.csv").read_bytes()).hexdigest()
    assert data_hash in text
    assert hashlib.sha256(prereg.read_bytes()).hexdigest() in text
    assert "NOT LOCKED" in text and "reflective_vs_control_slope" in text


def test_reproduce_py_refits_the_primary_estimate_in_a_fresh_interpreter(unlocked_report):
    bundle = unlocked_report[0].bundle_dir
    run = subprocess.run(
        [sys.executable, "reproduce.py"], cwd=bundle, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    printed = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("{")))
    primary = manifest["primary"]
    assert primary["id"] == "reflective_vs_control_slope"
    assert printed["estimate"] == pytest.approx(primary["estimate"], abs=0.01 * primary["se"])
    assert "reproduced" in run.stdout


def test_reproduce_py_fails_when_the_report_disagrees(unlocked_report, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(unlocked_report[0].bundle_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["primary"]["estimate"] += manifest["primary"]["se"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    run = subprocess.run(
        [sys.executable, "reproduce.py"], cwd=copy, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0 and "differs from the report's" in run.stderr


def test_reproduce_r_is_the_lme4_model_of_the_preregistration(unlocked_report):
    script = (unlocked_report[0].bundle_dir / "reproduce.R").read_text()
    formula = (
        "who5_percentage ~ arm * week + stratum_wellbeing + stratum_age_band"
        " + (1 + week | participant)"
    )
    assert f"lmer({formula}, data = data, REML = TRUE)" in script
    assert 'relevel(factor(data$arm), ref = "control")' in script
    assert '"armreflective:week" = 1' in script


def test_the_manifest_hashes_every_bundle_file_and_the_zip_holds_them(unlocked_report):
    files = unlocked_report[0]
    manifest = json.loads((files.bundle_dir / "manifest.json").read_text())
    expected = {
        "codebook.csv",
        "data.csv",
        "preregistration.yaml",
        "primary_model_data.csv",
        "reproduce.R",
        "reproduce.py",
    }
    assert set(manifest["files"]) == expected
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((files.bundle_dir / name).read_bytes()).hexdigest() == digest
    with zipfile.ZipFile(files.bundle_zip) as zipped:
        assert sorted(zipped.namelist()) == sorted(
            f"bundle/{n}" for n in [*expected, "manifest.json"]
        )


@pytest.mark.parametrize(
    ("re_formula", "expected"),
    [
        ("~ week", "y ~ x + (1 + week | pid)"),
        (None, "y ~ x + (1 | pid)"),
        ("~ 0 + week", "y ~ x + (0 + week | pid)"),
        ("~1", "y ~ x + (1 | pid)"),
    ],
)
def test_r_formula_adds_lme4_random_terms(re_formula, expected):
    assert r_formula("y ~ x", re_formula, "pid") == expected


def test_r_names_of_treatment_coded_terms():
    assert r_name("arm[T.reflective]:week") == "armreflective:week"
    assert r_name("Intercept") == "Intercept"


def test_flourish_report_from_a_csv(study, tmp_path):
    _, data = study
    csv = tmp_path / "data.csv"
    data.to_csv(csv, index=False)
    prereg = tmp_path / "prereg.yaml"
    shutil.copyfile(PREREG, prereg)
    runner = CliRunner()
    args = ["report", "--prereg", str(prereg), "--out", str(tmp_path / "out")]
    result = runner.invoke(main, [*args, "--data", str(csv)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.html").exists() and (
        tmp_path / "out" / "bundle.zip"
    ).exists()
    both = runner.invoke(main, [*args, "--data", str(csv), "--study", "x"])
    assert both.exit_code == 2 and "exactly one of --data and --study" in both.output


SMALL_PREREG = """
title: A report from the database
authors: [{name: Test Analyst}]
data_status: {collected: "no"}
hypotheses:
  - id: h1
    text: Reflective participants change faster in WHO-5 than controls.
    outcome: who5_percentage
    contrast: reflective_slope
    direction: two_sided
outcomes: {primary: [who5_percentage]}
arms: {variable: arm, reference: control}
models:
  - {id: primary, formula: who5_percentage ~ arm * week, groups: participant}
contrasts:
  - {id: reflective_slope, model: primary, weights: {"arm[T.reflective]:week": 1}}
multiplicity: {method: holm}
sample_size: {target: 9, rationale: a test}
"""


def test_flourish_report_from_the_database_is_audited(
    session, small_study, clock, tmp_path, monkeypatch
):
    """Nine participants enrolled, planned and answered through the domain functions; the
    report is built from `analysis.dataset.assemble` and its data hash is in the audit log."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import select

    from analysis.dataset import assemble
    from analysis.exports import snapshot_hash
    from study.models import AuditEvent
    from study.schedule import extend_horizon

    from .conftest import answer
    from .test_dataset import occasion_of

    people = [small_study().participant for _ in range(9)]
    extend_horizon(session, clock.now(), horizon=timedelta(weeks=30))
    session.commit()
    for week, key in ((0, "baseline"), (1, "weekly"), (2, "weekly")):
        if week:
            clock.set(datetime(2026, 3, 2 + 7 * week, 19, 30, tzinfo=UTC))
        for index, person in enumerate(people):
            level = (index + week * (index % 3)) % 6

            def value(instrument, scale, level=level):
                return min(max(level, scale.min), scale.max) if instrument == "who5" else 4

            answer(session, occasion_of(session, person, key, week).id, clock.now(), value)
    prereg = tmp_path / "prereg.yaml"
    prereg.write_text(SMALL_PREREG)
    url = session.get_bind().url.render_as_string(hide_password=False)
    monkeypatch.setenv("FLOURISH_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("FLOURISH_ENV", "test")
    out = tmp_path / "out"
    args = ["--database-url", url, "report", "--study", "assistant-flourishing-rct"]
    result = CliRunner().invoke(
        main, [*args, "--prereg", str(prereg), "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    data = assemble(session, small_study.study_id)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert snapshot_hash(data) in html and "9 participants" in html
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "report.write")).one()
    assert event.details["data_sha256"] == snapshot_hash(data)
    assert event.entity_id == str(small_study.study_id)
    assert (out / "bundle" / "data.csv").read_bytes().count(b"\n") == len(data) + 1


def test_the_html_report_renders_in_chromium_with_the_network_cut_off(unlocked_report, chromium):
    """Every request other than the file itself is refused; the figures still draw."""
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    requested: list[str] = []

    def refuse_the_network(route):
        requested.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", refuse_the_network)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(unlocked_report[0].html.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
    assert page.locator(".js-plotly-plot").count() == 4
    assert errors == []
    assert [url for url in requested if not url.startswith("file://")] == []
    context.close()


def test_the_fitted_trajectories_have_the_models_slopes(study, tmp_path):
    """The dashed lines are the fixed-effects predictions averaged over the analysed rows: in
    a model linear in week, each arm's line rises by its slope and the lines' difference is
    the arm x week coefficient."""
    from analysis.preregistration import load_preregistration
    from analysis.report_figures import fitted_trajectory_table
    from analysis.report_results import results_for_report

    _, data = study
    prereg = tmp_path / "prereg.yaml"
    shutil.copyfile(PREREG, prereg)
    results = results_for_report(load_preregistration(prereg), prereg, data)
    model = results.models["primary"]
    table = fitted_trajectory_table(model).set_index(["arm", "week"])["fitted"]
    weeks = sorted(table.index.get_level_values("week").unique())
    slope = {
        arm: (table[arm, weeks[-1]] - table[arm, weeks[0]]) / (weeks[-1] - weeks[0])
        for arm in ("control", "instruct", "reflective")
    }
    beta = model.fit.fixed["estimate"]
    assert slope["control"] == pytest.approx(beta["week"], abs=1e-9)
    assert slope["reflective"] - slope["control"] == pytest.approx(
        beta["arm[T.reflective]:week"], abs=1e-9
    )
