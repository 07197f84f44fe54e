"""The YAML layer: lines of keys and items, duplicate keys, syntax errors, times of day."""

from __future__ import annotations

from study.protocol.yamlsource import load_yaml


def test_every_key_and_item_has_its_line():
    doc, problems = load_yaml("a:\n  b: 1\n  c:\n    - x\n    - y: 2\n", "f.yaml")
    assert problems == []
    assert doc.lines[("a",)] == 1
    assert doc.lines[("a", "b")] == 2
    assert doc.lines[("a", "c", 1)] == 5
    assert doc.lines[("a", "c", 1, "y")] == 5
    # A path that is not in the document reports its nearest ancestor's line.
    assert doc.line_of(("a", "c", 1, "missing")) == 5


def test_duplicate_keys_are_errors_at_the_second_occurrence():
    _, problems = load_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", "f.yaml")
    assert [str(p) for p in problems] == [
        "f.yaml:4: b.c: duplicate key 'c' (first given at line 3)"
    ]


def test_syntax_errors_name_file_and_line():
    _, problems = load_yaml("a: 1\nb: [1, 2\nc: 3\n", "f.yaml")
    assert len(problems) == 1
    assert problems[0].file == "f.yaml" and problems[0].line in (3, 4)
    assert str(problems[0]).startswith(f"f.yaml:{problems[0].line}: YAML syntax error")


def test_unquoted_times_stay_times_not_base_60_numbers():
    doc, _ = load_yaml("at: 19:00\nn: 1_000\nf: 1.5\nb: yes\n", "f.yaml")
    assert doc.data == {"at": "19:00", "n": 1000, "f": 1.5, "b": True}


def test_merge_keys_with_explicit_keys_winning():
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n"
    doc, problems = load_yaml(text, "f.yaml")
    assert problems == []
    assert doc.data["derived"] == {"x": 1, "y": 3}
    assert doc.lines[("derived", "y")] == 4


def test_an_empty_document_is_none():
    doc, problems = load_yaml("# nothing\n", "f.yaml")
    assert doc.data is None and problems == []
