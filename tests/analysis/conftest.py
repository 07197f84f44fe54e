"""Fixtures for the analysis tests: the example preregistration, copied where a test may edit
and lock it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE_PREREGISTRATION = ROOT / "examples/preregistrations/assistant-flourishing-rct.yaml"
EXAMPLE_PROTOCOL = ROOT / "examples/protocols/assistant-flourishing-rct.yaml"


@pytest.fixture
def prereg_file(tmp_path) -> Path:
    """A private copy of the example preregistration (tests lock and edit it)."""
    target = tmp_path / EXAMPLE_PREREGISTRATION.name
    shutil.copyfile(EXAMPLE_PREREGISTRATION, target)
    return target
