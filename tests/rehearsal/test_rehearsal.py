"""The dress rehearsal: a small cohort goes through the whole example trial on PostgreSQL.

One rehearsal runs for the module (it is the expensive part): enrollment on the real pages, the
real dispatcher sending through the fake Twilio (tests/fakes/twilio.py) and a local SMTP server,
answers on the web and by SMS, STOP, WITHDRAW and the portal, chats against the fake
OpenAI-compatible endpoint (tests/fakes/openai_server.py), then the preregistered report. The
tests then read it as a specification: every invariant holds, the rehearsal exercised each
behaviour it claims to, and each check fails when the thing it guards is broken.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import NamedTuple

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from study.config import Settings
from study.db import make_engine
from study.rehearsal import Behaviour, RehearsalConfig, RehearsalResult, rehearse
from study.rehearsal.checks import run_checks
from study.rehearsal.fakes import MailSink
from study.rehearsal.ledger import Delivery
from study.rehearsal.protocol import assistant_key_envs
from tests.fakes.openai_server import TEST_API_KEY, FakeOpenAI
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

PARTICIPANTS = 24
ASSISTANT_KEYS = ("FLOURISH_ARM_INSTRUCT_API_KEY", "FLOURISH_ARM_REFLECTIVE_API_KEY")
# More of every rare behaviour than the CLI's defaults, so that a small cohort shows each one.
BEHAVIOUR = Behaviour(
    ineligible=0.05,
    opts_out=0.3,
    withdraws=0.25,
    late=0.1,
    invalid_sms=0.2,
    ema=0.15,
    chats_per_week=(0.2, 1.5),
)


class Run(NamedTuple):
    result: RehearsalResult
    engine: Engine
    settings: Settings
    twilio: FakeTwilio
    assistant_requests: int


@pytest.fixture(scope="module")
def rehearsal(postgres_template, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rehearsal")
    url = postgres_template.fresh_url()
    engine = make_engine(url)
    twilio = FakeTwilio()
    with (
        pytest.MonkeyPatch.context() as env,
        MailSink() as mail,
        FakeOpenAI(api_key=TEST_API_KEY) as assistant,
    ):
        env.setenv("FLOURISH_ALLOCATION_SEED", "rehearsal-test")
        for name in ASSISTANT_KEYS:
            env.setenv(name, TEST_API_KEY)
        settings = Settings.from_env(
            {},
            env="test",
            instance_path=tmp / "instance",
            database_url=url,
            secret_key="rehearsal-secret-" + "x" * 32,
            pii_key=Fernet.generate_key().decode(),
            public_url="https://study.example.org",
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_from="+15005550006",
            smtp_host="127.0.0.1",
            smtp_port=mail.port,
            smtp_from="study@example.org",
            smtp_starttls=False,
        )
        result = rehearse(
            engine,
            settings,
            tmp / "out",
            sms_gateway=twilio,
            mail=mail,
            assistant_base_url=assistant.base_url,
            config=RehearsalConfig(participants=PARTICIPANTS, seed=11, behaviour=BEHAVIOUR),
        )
        yield Run(result, engine, settings, twilio, len(assistant.requests))
    engine.dispose()


def test_every_invariant_holds_after_the_whole_trial(rehearsal):
    result = rehearsal.result
    assert result.all_passed, "\n" + result.checks_table()


def test_the_rehearsal_exercises_every_behaviour_it_claims(rehearsal):
    result, twilio = rehearsal.result, rehearsal.twilio
    people, ledger = result.people, result.ledger
    enrolled = [p for p in people if p.code]
    assert {p.arm for p in enrolled} == {"instruct", "reflective", "control"}
    assert len(enrolled) == sum(1 for p in people if p.eligible)
    assert {d.channel for d in ledger.deliveries} == {"sms", "email"}
    assert len([d for d in ledger.deliveries if d.channel == "sms"]) == twilio.message_count
    assert ledger.web_answers and ledger.sms_answers and ledger.invalid_sms and ledger.late
    assert all(outcome == "closed" for _, outcome in ledger.late)
    assert any(p.withdrawn_at and p.withdraw_by == "sms" for p in people)
    assert any(p.withdrawn_at and p.withdraw_by == "portal" for p in people)
    assert any(p.opted_out_at for p in people)
    answered = sum(1 for _, shown in ledger.chats if shown)
    assert answered > 0 and rehearsal.assistant_requests == answered
    # The whole timeline ran: the 24-week follow-up windows have closed.
    assert (result.rehearsal.ended_at - result.rehearsal.config.start).days >= 24 * 7 + 7


def test_the_preregistered_report_is_written(rehearsal):
    result = rehearsal.result
    files = result.report_files
    assert files.html.exists() and files.pdf.read_bytes().startswith(b"%PDF")
    assert files.bundle_zip.exists()
    assert result.dataset_rows > PARTICIPANTS  # one row per participant and occasion


def test_the_protocol_variant_only_adds_wording_and_the_local_endpoint(rehearsal):
    result = rehearsal.result
    protocol = result.rehearsal.protocol
    assert assistant_key_envs(protocol) == list(ASSISTANT_KEYS)
    assert [arm.key for arm in protocol.model.arms] == ["instruct", "reflective", "control"]


# --- each check fails when what it guards is broken -----------------------------------------------


def _failing(rehearsal, tamper) -> set[str]:
    result, engine, settings = rehearsal.result, rehearsal.engine, rehearsal.settings
    ledger, people = copy.deepcopy(result.ledger), copy.deepcopy(result.people)
    tamper(ledger, people)
    checks = run_checks(engine, settings, ledger, people, result.rehearsal.ended_at)
    return {check.name for check in checks if not check.passed}


def test_an_acknowledged_answer_missing_from_the_database_is_found(rehearsal):
    def tamper(ledger, people):
        answers = next(iter(ledger.web_answers.values()))
        name = next(iter(answers))
        answers[name] = "99"

    assert _failing(rehearsal, tamper) == {"every acknowledged web answer is stored"}


def test_an_sms_answer_nobody_acknowledged_is_found(rehearsal):
    def tamper(ledger, people):
        person = next(iter(ledger.sms_answers))
        ledger.sms_answers[person] = ledger.sms_answers[person][:-1]

    assert _failing(rehearsal, tamper) == {
        "every acknowledged SMS answer is stored, in order, and nothing else"
    }


def test_a_message_after_withdrawal_or_stop_and_a_duplicate_are_found(rehearsal):
    def tamper(ledger, people):
        withdrawn = next(p for p in people if p.withdrawn_at)
        stopped = next(p for p in people if p.opted_out_at)
        first = next(d for d in ledger.deliveries if d.token)
        ledger.deliveries += [
            dataclasses.replace(first, persona=withdrawn.index, at=withdrawn.withdrawn_at),
            Delivery(
                "sms", stopped.phone, "hello", stopped.opted_out_at, stopped.index, None, None
            ),
        ]

    assert _failing(rehearsal, tamper) == {
        "no invitation was sent twice",
        "withdrawn participants got nothing after withdrawing",
        "opted-out participants got no SMS after STOP",
    }


def test_an_invitation_that_never_arrived_is_found(rehearsal):
    def tamper(ledger, people):
        staying = next(p for p in people if p.code and p.withdrawn_at is None)
        ledger.deliveries = [d for d in ledger.deliveries if d.persona != staying.index]

    assert "no invitation was lost" in _failing(rehearsal, tamper)


def test_chat_content_kept_without_consent_is_found(rehearsal):
    def tamper(ledger, people):
        person = next(
            p
            for p, shown in ledger.chats
            if shown and people[p].stores_chat and people[p].withdrawn_at is None
        )
        people[person].stores_chat = False

    assert _failing(rehearsal, tamper) == {
        "chat turns are logged, with content only where consented"
    }


def test_the_command_runs_a_short_rehearsal_with_its_own_stand_ins(tmp_path, monkeypatch):
    """`flourish rehearse` with the package's SMS gateway, SMTP server and assistant endpoint."""
    from click.testing import CliRunner

    from study.cli import main

    # The command sets these for its own process; the test restores them afterwards.
    for name in ("FLOURISH_ALLOCATION_SEED", *ASSISTANT_KEYS):
        monkeypatch.setenv(name, "")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["rehearse", "--participants", "6", "--seed", "3", "--out", str(out), "--days", "9"]
    )

    assert result.exit_code == 0, result.output
    assert "enrolled by arm" in result.output and "FAIL" not in result.output
    assert (out / "report" / "report.html").exists()
    assert (out / "preregistration.yaml").exists()
