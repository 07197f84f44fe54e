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


# --- a small study built through the real domain functions --------------------------------------

SURVEY_MESSAGES = {"choose_answer": "Choose an answer.", "not_allowed": "From {low} to {high}."}
# The example's UCLA-3 and SD-WISE-7 have no shipped wording, so web surveys cannot show them;
# the small study asks WHO-5 weekly and WHO-5 + SWLS at baseline and follow-ups instead.
_SHIPPED_ONLY = {
    "instruments: [who5, ucla3]": "instruments: [who5]",
    "[who5, ucla3, bpnsfs, swls, flourishing_scale, flourish_index, perma_profiler,\n"
    "                  sdwise7]": "[who5, swls]",
    "&full [bpnsfs, swls, flourishing_scale, flourish_index, perma_profiler, sdwise7]": (
        "&full [who5, swls]"
    ),
}


def small_protocol():
    """The example protocol asking only instruments with shipped wording."""
    from study.protocol import parse_protocol

    text = EXAMPLE_PROTOCOL.read_text(encoding="utf-8")
    for old, new in _SHIPPED_ONLY.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_protocol(text, str(EXAMPLE_PROTOCOL), base_dir=EXAMPLE_PROTOCOL.parent)


def answer(session, occasion_id: int, now, value) -> None:
    """Answer every page of an occasion's web survey; `value(instrument_id, scale)` gives the
    answer to each item (None: stop before that page, leaving the survey partial)."""
    from study import surveys

    survey = surveys.open_survey(session, occasion_id, now=now)
    for page in survey.pages:
        definition = page.definition
        form = {}
        for item in page.items:
            scale = definition.scale_of(next(i for i in definition.items if i.id == item.id))
            chosen = value(definition.id, scale)
            if chosen is None:
                session.commit()
                return
            form[surveys.field_name(definition.id, item.id)] = str(chosen)
        outcome = surveys.save_page(
            session, occasion_id, page.number, form, now=now, messages=lambda _: SURVEY_MESSAGES
        )
        assert not outcome.problems, outcome.problems
    session.commit()


@pytest.fixture
def small_study(session, clock):
    """Registers the small protocol and returns a function enrolling one participant through
    screening, consent, baseline WHO-5, contacts and preferences (all real domain steps), which
    allocates them and plans their schedule; it returns the participant."""
    from cryptography.fernet import Fernet

    from study import enrollment
    from study.pii import PiiVault
    from study.protocol.registry import register_protocol
    from tests.study.test_enrollment import ENVIRON, ready_to_enroll

    register_protocol(session, small_protocol(), actor="test")
    session.commit()
    opened = enrollment.open_study(session, "assistant-flourishing-rct")
    vault = PiiVault(Fernet.generate_key().decode())

    def enroll_one():
        journey = ready_to_enroll(session, vault, opened, clock)
        enrollment.enroll(session, journey, now=clock.now(), environ=ENVIRON)
        session.commit()
        return journey

    enroll_one.study_id = opened.study.id
    return enroll_one
