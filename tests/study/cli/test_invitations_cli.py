"""`flourish invitations create`: codes shown once, stored only as hashes, opening the study."""

from __future__ import annotations

from sqlmodel import Session, select

from study.enrollment import find_invitation, invitation_hash
from study.models import AuditEvent, Invitation, Study
from tests.study.web.conftest import EXAMPLE


def test_codes_are_printed_once_with_their_links_and_stored_only_as_hashes(flourish, sqlite_engine):
    assert flourish("protocol", "load", str(EXAMPLE)).exit_code == 0
    result = flourish(
        "invitations", "create", "assistant-flourishing-rct", "-n", "3", "--label", "clinic A"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "code,link"
    codes = [line.split(",")[0] for line in lines[1:]]
    assert len(set(codes)) == 3
    assert all(
        line.split(",")[1].endswith(f"/join/assistant-flourishing-rct?code={code}")
        for line, code in zip(lines[1:], codes, strict=True)
    )

    with Session(sqlite_engine) as session:
        stored = session.exec(select(Invitation)).all()
        assert {row.code_hash for row in stored} == {invitation_hash(code) for code in codes}
        assert all(row.label == "clinic A" for row in stored)
        study = session.exec(select(Study)).one()
        assert find_invitation(session, study, codes[0]) is not None
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "invitation.issue")
        ).one()
        assert event.details["count"] == 3
        assert not any(code in str(event.details) for code in codes)


def test_an_unknown_study_is_named(flourish):
    result = flourish("invitations", "create", "nope")
    assert result.exit_code != 0
    assert "no study 'nope'" in result.output
