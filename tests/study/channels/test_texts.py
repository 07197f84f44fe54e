"""Invitation and reminder texts: short SMS with the link and opt-out line, full emails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from study.channels import render_invitation, sms_segments
from study.channels.gsm import is_gsm7
from study.channels.texts import STRINGS, local_time, portal_link, text
from study.models import Occasion, Participant
from study.protocol import load_protocol

EXAMPLE = Path(__file__).parents[3] / "examples/protocols/assistant-flourishing-rct.yaml"
# As long as a real survey link (study.schedule.links): 87 characters.
LINK = "https://study.example.org/s/" + "T" * 59


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(EXAMPLE)


@pytest.fixture
def occasion():
    return Occasion(
        participant_id=1,
        protocol_version_id=1,
        schedule_key="weekly",
        wave=3,
        kind="wave",
        instruments=["who5"],
        due_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        closes_at=datetime(2026, 3, 3, 18, 0, tzinfo=UTC),
    )


def participant(**overrides) -> Participant:
    values = {"study_id": 1, "code": "P-0001", "timezone": "America/New_York"}
    values.update(overrides)
    return Participant(**values)


@pytest.mark.parametrize("purpose", ["invitation", "reminder"])
def test_an_sms_is_one_gsm7_segment_with_the_link_and_the_opt_out_line(protocol, occasion, purpose):
    subject, body = render_invitation(
        occasion, participant(), protocol, LINK, purpose, channel="sms"
    )

    assert subject is None
    assert LINK in body
    assert body.endswith("Reply STOP to opt out")
    assert body.startswith("FLOURISH:")
    assert is_gsm7(body) and sms_segments(body) == 1
    # The closing time is in the participant's zone: 18:00 UTC is 13:00 in New York (EST),
    # and within a week the weekday says which day.
    assert "Tue 13:00" in body


def test_a_long_link_drops_the_closing_time_but_never_the_link_or_opt_out(protocol, occasion):
    link = "https://study.example.org/s/" + "T" * 70
    _, body = render_invitation(occasion, participant(), protocol, link, channel="sms")
    assert link in body and "Reply STOP to opt out" in body
    assert "13:00" not in body
    assert sms_segments(body) == 1


def test_an_sms_for_a_long_window_names_the_date(protocol, occasion):
    occasion.closes_at = datetime(2026, 3, 9, 18, 0, tzinfo=UTC)
    link = "https://fl.example/s/abc"
    _, body = render_invitation(occasion, participant(), protocol, link, channel="sms")
    assert "Mon 9 Mar, 14:00" in body  # New York is on daylight time from 8 March
    assert sms_segments(body) == 1


def test_the_channel_defaults_to_the_participants_preference(protocol, occasion):
    subject, _ = render_invitation(
        occasion, participant(preferred_channel="email"), protocol, LINK, "invitation"
    )
    assert subject is not None
    subject, _ = render_invitation(
        occasion, participant(preferred_channel="both"), protocol, LINK, "invitation"
    )
    assert subject is None


def test_an_email_has_a_subject_the_link_the_closing_time_a_withdraw_link_and_the_contact(
    protocol, occasion
):
    subject, body = render_invitation(
        occasion, participant(timezone="Asia/Kolkata"), protocol, LINK, channel="email"
    )
    assert subject == "Everyday Life and AI Assistants Study: your questionnaire is ready"
    assert LINK in body
    assert "Tue 3 Mar, 23:30 (Asia/Kolkata time)" in body
    assert "https://study.example.org/p/" in body
    assert protocol.model.study.contact.email in body
    assert body.rstrip().endswith(protocol.model.channels.email.from_name)


def test_an_email_reminder_names_the_closing_time_in_its_subject(protocol, occasion):
    subject, body = render_invitation(
        occasion,
        participant(),
        protocol,
        LINK,
        "reminder",
        channel="email",
        withdraw_link="https://study.example.org/p/personal-token",
    )
    assert subject.startswith("Reminder:") and "Tue 3 Mar, 13:00" in subject
    assert "https://study.example.org/p/personal-token" in body


def test_unknown_purposes_and_channels_are_refused(protocol, occasion):
    with pytest.raises(ValueError, match="purpose"):
        render_invitation(occasion, participant(), protocol, LINK, "nudge")
    with pytest.raises(ValueError, match="channel"):
        render_invitation(occasion, participant(), protocol, LINK, channel="web")


def test_a_missing_translation_falls_back_to_english(monkeypatch):
    monkeypatch.setitem(STRINGS, "de", {"sms.not_understood": "Nicht verstanden."})
    assert text("de", "sms.not_understood") == "Nicht verstanden."
    assert text("de", "sms.help.unknown") == STRINGS["en"]["sms.help.unknown"]
    assert text("de-AT", "sms.not_understood") == "Nicht verstanden."
    assert text("fr", "sms.not_understood") == STRINGS["en"]["sms.not_understood"]


def test_local_time_takes_the_zone_and_survives_an_unknown_zone():
    instant = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert local_time(instant, "Europe/London") == "Sun 29 Mar, 00:30"
    assert local_time(instant, "Pacific/Chatham") == "Sun 29 Mar, 14:15"
    assert local_time(instant, "Not/AZone") == "Sun 29 Mar, 00:30"


def test_the_portal_link_sits_next_to_the_survey_link():
    assert portal_link("https://h.example/s/abc") == "https://h.example/p/"
    assert portal_link("https://h.example/flourish/s/abc") == "https://h.example/flourish/p/"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count twice
        ("€" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM alphabet
        ("ç" * 70, 1),  # ç is not: UCS-2
        ("ç" * 71, 2),
        ("😀" * 35, 1),  # an emoji is two UTF-16 units
        ("😀" * 36, 2),
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(body, segments):
    assert sms_segments(body) == segments
