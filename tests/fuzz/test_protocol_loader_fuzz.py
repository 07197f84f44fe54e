"""Mutated protocol files: the loader either accepts the file or raises `ProtocolError` whose
every problem names the file and a line. No other exception, whatever the mutation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from study.protocol import ProtocolError, parse_protocol
from tests.fuzz import fuzz_settings

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
LINES = EXAMPLE.read_text(encoding="utf-8").splitlines()
SOURCE = "fuzz.yaml"
KEY_VALUE = re.compile(r"^(\s*(?:- )?[\w-]+:\s+)(\S.*)$")
VALUE_LINES = [i for i, line in enumerate(LINES) if KEY_VALUE.match(line)]

YAML_TRICKS = st.sampled_from(
    [
        "null",
        "~",
        "[]",
        "{}",
        "yes",
        "no",
        "on",
        "0x1F",
        "1e309",
        ".nan",
        "-.inf",
        "2026-02-30",
        "'unterminated",
        '"\\x"',
        "&anchor",
        "*missing",
        "!!binary AAAA",
        "!python/object x",
        "[1, [2, [3",
        "{a: {b:",
        "? complex key",
        "- a\n- b",
        "|\n  block",
        ">-",
        "@",
        "`",
        "'" + "x" * 500 + "'",
        "\t",
        "key: value: other",
        "P1D",
        "25:61",
        "../../../etc/passwd",
    ]
)
# Characters YAML allows in a document. The others (C0 controls, U+FFFE) make PyYAML's reader
# raise before the line-aware loader can catch it; that bug has its own test below.
YAML_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"),
    max_size=40,
)
SCALARS = st.one_of(
    YAML_TRICKS,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    YAML_TEXT,
)


@st.composite
def mutations(draw) -> list[str]:
    lines = list(LINES)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["value", "delete", "duplicate", "indent", "insert", "cut"]))
        if kind == "value":
            i = draw(st.sampled_from(VALUE_LINES))
            match = KEY_VALUE.match(lines[i]) if i < len(lines) else None
            if match:
                lines[i] = match.group(1) + draw(SCALARS)
            continue
        i = draw(st.integers(min_value=0, max_value=max(0, len(lines) - 1)))
        if not lines:
            lines.append(draw(SCALARS))
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "indent":
            shift = draw(st.sampled_from([-4, -2, -1, 1, 2, 4]))
            lines[i] = " " * shift + lines[i] if shift > 0 else lines[i][-shift:]
        elif kind == "insert":
            lines.insert(i, draw(SCALARS))
        else:  # cut the file short, mid-line
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\n")
    return lines


@fuzz_settings(60)
@given(mutations())
def test_a_mutated_protocol_loads_or_fails_with_file_and_line(lines):
    text = "\n".join(lines) + "\n"
    try:
        parse_protocol(text, SOURCE, EXAMPLE.parent)
    except ProtocolError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.line is not None, str(problem)
            assert str(problem).startswith(f"{problem.file}:{problem.line}: ")
            assert problem.file == SOURCE or Path(problem.file).name, str(problem)
            assert 1 <= problem.line <= max(len(lines), 1) + 1 or problem.file != SOURCE


def test_a_control_character_is_a_problem_at_its_line_not_a_crash():
    lines = list(LINES)
    slug = next(i for i, line in enumerate(lines) if line.strip().startswith("slug:"))
    lines[slug] = "  slug: \x1f"
    with pytest.raises(ProtocolError) as caught:
        parse_protocol("\n".join(lines) + "\n", SOURCE, EXAMPLE.parent)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (SOURCE, slug + 1)
    assert "U+001F" in problem.message
