"""`flourish instruments list/show`: the catalogue and one definition, without a database."""

from __future__ import annotations

import json

from click.testing import CliRunner

from study.cli import main
from tests.instruments.definitions import MINIMAL


def flourish(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_list_prints_one_row_per_instrument():
    result = flourish("instruments", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "ITEMS",
        "LANGUAGES",
        "COMMERCIAL",
        "USE",
        "WORDING",
        "SMS",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["who5"] == ["who5", "WHO-5", "5", "en", "allowed", "shipped", "yes"]
    assert rows["flourish_index"] == [
        "flourish_index",
        "FI/SFI",
        "12",
        "en",
        "not",
        "allowed",
        "shipped",
        "yes",
    ]
    assert rows["uls8"][-2:] == ["local", "yes"]
    assert rows["perma_profiler"][-1] == "no"


def test_list_as_json():
    result = flourish("instruments", "list", "--json")
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows["bpnsfs"]["items"] == 24
    assert rows["bpnsfs"]["commercial_use"] == "needs_permission"
    assert rows["flourishing_scale"]["doi"] == "10.1007/s11205-009-9493-y"
    assert rows["sdwise7"]["wording"] == "local"


def test_commercial_only_by_flag_or_deployment_setting():
    by_flag = json.loads(flourish("instruments", "list", "--json", "--commercial-only").output)
    assert {row["id"] for row in by_flag} == {"who5", "swls", "flourishing_scale"}
    by_env = flourish("instruments", "list", env={"FLOURISH_COMMERCIAL_INSTRUMENTS_ONLY": "1"})
    assert "flourish_index" not in by_env.output.split()
    assert "6 excluded (licence does not allow commercial use)" in by_env.output


def test_show_gives_citation_licence_items_and_scores():
    result = flourish("instruments", "show", "uls8")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Citation: Hays RD, DiMatteo MR (1987)" in out
    assert "Licence: Terms of use not found; commercial use: unknown" in out
    assert "   3. uls8_3 [frequency4, reversed] (no text: supply it in a wording file)" in out
    assert "   1. uls8_1 [frequency4] (no text" in out
    assert "  frequency4: 1 to 4 (4 points); 1 = Never; 4 = Often" in out
    assert "  total (total): Loneliness = sum of 8 items (uls8_1, uls8_2, uls8_3" in out


def test_show_describes_transforms():
    out = flourish("instruments", "show", "who5").output
    assert "   1. who5_1 [frequency6] I have felt cheerful and in good spirits." in out
    assert "  percentage (derived): WHO-5 percentage score = raw x 4" in out
    assert "Reference period: the last two weeks" in out


def test_show_in_another_language_marks_fallback_text(tmp_path):
    (tmp_path / "mood3.yaml").write_text(MINIMAL)
    out = flourish("instruments", "show", "mood3", "--include", str(tmp_path), "-l", "de").output
    assert "   1. mood_1 [agree5] Ich bin ruhig." in out
    out = flourish("instruments", "show", "who5", "--language", "pt-BR").output
    assert "   1. who5_1 [frequency6] I have felt cheerful and in good spirits. [en]" in out


def test_show_an_unknown_instrument_suggests_the_closest():
    result = CliRunner().invoke(main, ["instruments", "show", "who_5"])
    assert result.exit_code == 1
    assert "Error: unknown instrument 'who_5'; did you mean 'who5'?" in result.output


def test_a_broken_study_file_is_reported_with_its_line(tmp_path):
    (tmp_path / "mood3.yaml").write_text(MINIMAL.replace("citation:", "citaton:"))
    result = CliRunner().invoke(main, ["instruments", "list", "--include", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'mood3.yaml'}:5: citaton: unknown key 'citaton'" in result.output
