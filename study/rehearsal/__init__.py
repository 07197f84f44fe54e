"""The full-study dress rehearsal (`flourish rehearse`; docs/rehearsal.md).

Simulated participants (`population`) go through the example trial on an accelerated clock
(`driver`): enrollment and consent on the real web pages, invitations by the real dispatcher
through an SMS gateway and an SMTP server on the loopback interface (`fakes`), answers on the
web and by SMS (`actions`, `sms`), STOP, WITHDRAW and the portal's withdraw form, and assistant
chats against a local OpenAI-compatible endpoint. Then the preregistered analysis and report
(`analysis`), and the invariants (`checks`):

    with MailSink() as mail, LocalAssistant() as assistant:
        result = rehearse(engine, settings, out_dir, sms_gateway=..., mail=mail,
                          assistant_base_url=assistant.base_url, config=RehearsalConfig(...))
    print(result.summary_table()); print(result.checks_table())
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from study.config import Settings

from .analysis import lock_preregistration, write_study_report
from .checks import Check, run_checks
from .driver import Rehearsal, RehearsalConfig
from .ledger import Ledger
from .population import Behaviour, Persona

__all__ = ["Behaviour", "Check", "RehearsalConfig", "RehearsalResult", "rehearse"]


@dataclass
class RehearsalResult:
    rehearsal: Rehearsal
    ledger: Ledger
    checks: list[Check]
    report_files: object
    dataset_rows: int

    @property
    def people(self) -> list[Persona]:
        return self.rehearsal.people

    def figures(self) -> dict[str, object]:
        """The summary figures, by name."""
        ledger, people = self.ledger, self.people
        arms = Counter(p.arm for p in people if p.code)
        sent = Counter(d.channel for d in ledger.deliveries)
        days = (self.rehearsal.ended_at - self.rehearsal.config.start).total_seconds() / 86400
        return {
            "participants": len(people),
            "enrolled": sum(arms.values()),
            "enrolled by arm": ", ".join(f"{arm} {n}" for arm, n in sorted(arms.items())),
            "not eligible": sum(1 for p in people if not p.eligible),
            "messages sent": ", ".join(f"{ch} {n}" for ch, n in sorted(sent.items())),
            "survey visits": ", ".join(f"{k} {n}" for k, n in sorted(ledger.answers.items())),
            "SMS answers acknowledged": sum(len(v) for v in ledger.sms_answers.values()),
            "web answers acknowledged": sum(len(v) for v in ledger.web_answers.values()),
            "invalid SMS re-asked": len(ledger.invalid_sms),
            "late visits (closed page)": len(ledger.late),
            "texted STOP": sum(1 for p in people if p.opted_out_at is not None),
            "withdrew": sum(1 for p in people if p.withdrawn_at is not None),
            "chats (answered)": f"{len(ledger.chats)} ({sum(1 for _, ok in ledger.chats if ok)})",
            "scheduler ticks": ledger.ticks,
            "dataset rows": self.dataset_rows,
            "simulated days": f"{days:.1f}",
            "wall time": f"{self.rehearsal.wall_seconds:.0f} s",
        }

    def summary_table(self) -> str:
        figures = self.figures()
        width = max(len(name) for name in figures)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in figures.items())

    def checks_table(self) -> str:
        width = max(len(check.name) for check in self.checks)
        lines = []
        for check in self.checks:
            mark = "ok  " if check.passed else "FAIL"
            lines.append(f"{mark}  {check.name:<{width}}  {check.detail}")
            lines += [f"        {failure}" for failure in check.failures]
        problems = self.ledger.problems
        lines.append(
            f"{'ok  ' if not problems else 'FAIL'}  {'every page answered as expected':<{width}}"
            f"  {len(problems)} problems"
        )
        lines += [f"        {problem}" for problem in problems[:5]]
        return "\n".join(lines)

    @property
    def all_passed(self) -> bool:
        return all(check.passed for check in self.checks) and not self.ledger.problems


def rehearse(
    engine: Engine,
    settings: Settings,
    out_dir: str | Path,
    *,
    sms_gateway,
    mail,
    assistant_base_url: str,
    config: RehearsalConfig | None = None,
    progress=None,
) -> RehearsalResult:
    """Run the whole rehearsal on `engine` (migrated, empty) and write the report into
    `out_dir`; see `Rehearsal` for what the outside-world arguments must be."""
    out = Path(out_dir)
    rehearsal = Rehearsal(
        engine,
        settings,
        sms_gateway=sms_gateway,
        mail=mail,
        assistant_base_url=assistant_base_url,
        config=config,
        progress=progress,
    )
    say = progress or (lambda line: None)
    prereg = lock_preregistration(engine, out, rehearsal.clock.now())
    ledger = rehearsal.run()
    say("checks ...")
    checks = run_checks(engine, settings, ledger, rehearsal.people, rehearsal.ended_at)
    say("analysis and report ...")
    files, rows = None, 0
    try:
        data, files = write_study_report(engine, rehearsal.protocol.model.study.slug, prereg, out)
        rows = len(data)
    except Exception as exc:  # a finding of the rehearsal, reported with the other checks
        detail = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        checks.append(Check("the preregistered analysis and report are written", False, detail))
    else:
        checks.append(
            Check(
                "the preregistered analysis and report are written",
                True,
                f"{rows} dataset rows, {files.html.parent}",
            )
        )
    return RehearsalResult(rehearsal, ledger, checks, files, rows)
