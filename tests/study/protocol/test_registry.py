"""Registering protocols: new studies, no-op reloads, amendments, arms added and retired."""

from __future__ import annotations

import pytest
from sqlmodel import col, func, select

from study.models import Arm, AuditEvent, ProtocolVersion, Study
from study.protocol import parse_protocol
from study.protocol.registry import (
    RegistrationError,
    current_version,
    list_versions,
    load_version,
    register_protocol,
)

from .conftest import MINIMAL, edit

ACTOR = "cli:tester"
FILES = {"constitution.md": "# Constitution\n\nSupport the participant.\n", "consent.md": "# C\n"}

THIRD_ARM = """\
  - key: coach
    name: Coach
    description: A coaching assistant.
    assistant: null
allocation:
"""


def protocol(text: str = MINIMAL, files: dict | None = None):
    return parse_protocol(text, "mini.yaml", files=files or FILES)


def audit_actions(session) -> list[str]:
    return list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))))


def arms(session, study) -> dict[str, Arm]:
    return {a.key: a for a in session.exec(select(Arm).where(Arm.study_id == study.id))}


def test_a_new_protocol_creates_the_study_version_1_and_its_arms(session):
    registration = register_protocol(session, protocol(), ACTOR)
    session.commit()
    assert (registration.created_study, registration.created_version) == (True, True)
    assert registration.outcome == "new"
    study = session.exec(select(Study)).one()
    assert (study.slug, study.title) == ("mini-trial", "Mini trial")
    version = registration.version
    assert (version.number, version.loaded_by) == (1, ACTOR)
    assert version.content_hash == protocol().content_hash
    assert {k: a.has_assistant for k, a in arms(session, study).items()} == {
        "assisted": True,
        "control": False,
    }
    assert audit_actions(session) == [
        "study.create",
        "protocol.version_create",
        "arm.create",
        "arm.create",
    ]


def test_the_stored_version_reparses_to_the_same_protocol(session):
    original = protocol()
    register_protocol(session, original, ACTOR)
    session.commit()
    study = session.exec(select(Study)).one()
    stored = load_version(current_version(session, study.id))
    assert stored.content_hash == original.content_hash
    assert stored.source_text == MINIMAL
    assert stored.model == original.model


def test_reloading_identical_content_is_a_no_op(session):
    register_protocol(session, protocol(), ACTOR)
    session.commit()
    events_before = session.exec(select(func.count()).select_from(AuditEvent)).one()
    again = register_protocol(session, protocol(), "cli:someone-else")
    session.commit()
    assert (again.created_study, again.created_version, again.outcome) == (
        False,
        False,
        "unchanged",
    )
    assert again.version.number == 1
    assert session.exec(select(func.count()).select_from(ProtocolVersion)).one() == 1
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == events_before


def test_changed_content_is_an_amendment_with_the_next_number(session):
    register_protocol(session, protocol(), ACTOR)
    session.commit()
    amended = protocol(edit(MINIMAL, "title: Mini trial", "title: Mini trial, amended"))
    registration = register_protocol(session, amended, ACTOR)
    session.commit()
    assert registration.outcome == "amended"
    assert registration.version.number == 2
    assert registration.study.title == "Mini trial, amended"
    study = session.exec(select(Study)).one()
    assert [v.number for v in list_versions(session, study.id)] == [1, 2]
    assert current_version(session, study.id).content_hash == amended.content_hash
    assert audit_actions(session)[-2:] == ["protocol.version_create", "study.update"]


def test_a_changed_constitution_alone_is_an_amendment(session):
    register_protocol(session, protocol(), ACTOR)
    session.commit()
    files = {**FILES, "constitution.md": "# Constitution\n\nA revised constitution.\n"}
    registration = register_protocol(session, protocol(files=files), ACTOR)
    session.commit()
    assert (registration.outcome, registration.version.number) == ("amended", 2)
    assert audit_actions(session)[-1] == "protocol.version_create"


def test_an_added_arm_records_the_version_that_introduced_it(session):
    register_protocol(session, protocol(), ACTOR)
    session.commit()
    text = edit(MINIMAL, "allocation:\n", THIRD_ARM)
    text = edit(
        text, "ratio: {assisted: 1, control: 1}", "ratio: {assisted: 1, control: 1, coach: 1}"
    )
    text = edit(text, "block_sizes: [2, 4]", "block_sizes: [3, 6]")
    register_protocol(session, protocol(text), ACTOR)
    session.commit()
    study = session.exec(select(Study)).one()
    coach = arms(session, study)["coach"]
    assert (coach.introduced_in_version, coach.retired_in_version) == (2, None)
    assert audit_actions(session)[-1] == "arm.create"


def test_a_removed_arm_is_retired_not_deleted_and_can_return(session):
    with_coach = edit(MINIMAL, "allocation:\n", THIRD_ARM)
    with_coach = edit(
        with_coach, "ratio: {assisted: 1, control: 1}", "ratio: {assisted: 1, control: 1, coach: 1}"
    )
    with_coach = edit(with_coach, "block_sizes: [2, 4]", "block_sizes: [3, 6]")
    register_protocol(session, protocol(with_coach), ACTOR)
    session.commit()
    register_protocol(session, protocol(edit(MINIMAL, 'version: "1"', 'version: "2"')), ACTOR)
    session.commit()
    study = session.exec(select(Study)).one()
    coach = arms(session, study)["coach"]
    assert coach.retired_in_version == 2
    assert audit_actions(session)[-1] == "arm.retire"
    renamed = with_coach.replace("name: Coach", "name: Coach (restored)")
    register_protocol(session, protocol(renamed), ACTOR)
    session.commit()
    coach = arms(session, study)["coach"]
    assert (coach.name, coach.retired_in_version, coach.introduced_in_version) == (
        "Coach (restored)",
        None,
        1,
    )
    assert audit_actions(session)[-1] == "arm.reinstate"


def test_a_renamed_arm_is_updated_and_audited_with_before_and_after(session):
    register_protocol(session, protocol(), ACTOR)
    session.commit()
    register_protocol(session, protocol(edit(MINIMAL, "name: Control", "name: Usual care")), ACTOR)
    session.commit()
    study = session.exec(select(Study)).one()
    assert arms(session, study)["control"].name == "Usual care"
    event = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert event.action == "arm.update"
    assert event.before_hash and event.after_hash and event.before_hash != event.after_hash
    assert event.details == {"key": "control", "version": 2}


def test_returning_to_a_superseded_version_must_be_a_new_amendment(session):
    register_protocol(session, protocol(), ACTOR)
    register_protocol(session, protocol(edit(MINIMAL, "name: Control", "name: Usual care")), ACTOR)
    session.commit()
    with pytest.raises(RegistrationError, match="identical to version 1"):
        register_protocol(session, protocol(), ACTOR)
