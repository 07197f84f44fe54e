"""The allocation seed: from the environment, a development fallback, never guessable in
production."""

from __future__ import annotations

import logging

import pytest

from study.randomization import AllocationError, allocation_seed

from .conftest import edit, parse

STRONG = "k3J9-very-secret-allocation-seed"


def test_the_seed_comes_from_the_variable_the_protocol_names(example):
    environ = {"FLOURISH_ALLOCATION_SEED": STRONG, "FLOURISH_ENV": "production"}
    assert allocation_seed(example, environ) == STRONG


def test_production_refuses_to_run_without_the_seed(example):
    with pytest.raises(AllocationError, match="set the environment variable FLOURISH_ALLOCATION"):
        allocation_seed(example, {"FLOURISH_ENV": "production", "FLOURISH_SECRET_KEY": "x" * 40})


def test_production_refuses_a_short_seed(example):
    environ = {"FLOURISH_ALLOCATION_SEED": "1234", "FLOURISH_ENV": "production"}
    with pytest.raises(AllocationError, match="shorter than 16 characters"):
        allocation_seed(example, environ)


def test_production_refuses_a_protocol_without_seed_env(example):
    protocol = parse(edit(example.source_text, "  seed_env: FLOURISH_ALLOCATION_SEED\n", ""))
    with pytest.raises(AllocationError, match=r"names no allocation\.seed_env"):
        allocation_seed(protocol, {"FLOURISH_ENV": "production"})


def test_development_falls_back_to_a_seed_derived_from_the_secret_key(example, caplog):
    environ = {"FLOURISH_ENV": "development", "FLOURISH_SECRET_KEY": "instance-secret" * 3}
    with caplog.at_level(logging.WARNING, logger="study.randomization"):
        seed = allocation_seed(example, environ)
    assert seed == allocation_seed(example, environ)
    assert len(seed) == 64 and seed != environ["FLOURISH_SECRET_KEY"]
    assert "FLOURISH_ALLOCATION_SEED is not set" in caplog.text
    assert seed not in caplog.text
    other_instance = {**environ, "FLOURISH_SECRET_KEY": "another-secret" * 3}
    assert allocation_seed(example, other_instance) != seed


def test_the_fallback_differs_between_studies(example, minimisation):
    renamed = parse(
        edit(example.source_text, "slug: assistant-flourishing-rct", "slug: another-trial")
    )
    environ = {"FLOURISH_SECRET_KEY": "instance-secret" * 3}
    assert allocation_seed(renamed, environ) != allocation_seed(example, environ)


def test_the_running_instance_key_is_preferred_to_the_environment(example):
    environ = {"FLOURISH_SECRET_KEY": "from-environment" * 3}
    assert allocation_seed(example, environ, secret_key="from-settings" * 3) != allocation_seed(
        example, environ
    )


def test_without_any_key_development_uses_the_instance_folder(example, tmp_path):
    environ = {"FLOURISH_INSTANCE_PATH": str(tmp_path / "instance")}
    seed = allocation_seed(example, environ)
    assert (tmp_path / "instance" / "dev-secret-key").exists()
    assert allocation_seed(example, environ) == seed
