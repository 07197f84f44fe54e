"""A dispatcher process for crash tests: `python -m tests.support.dispatcher [options]`.

It does what the dispatch task of `flourish scheduler` does every tick (`dispatch_due` with the
deployment's policy, then the heartbeat), in a tight loop, with two differences a test needs:

- SMS goes to the fake Twilio served by `tests.support.twilio_server.TwilioServer` at
  `FLOURISH_TEST_TWILIO_URL`, through the real `twilio` client and the real SMS channel;
- `--clock-offset-seconds` runs its clock ahead of the wall clock, so that a dispatcher
  restarted after a crash sees the dead one's leases as expired without the test waiting two
  minutes (a lease is a promise about time, and this is how time is made to pass).

Everything else (settings, database, keys) comes from the environment like any Flourish
process (`tests.support.processes.server_env`). With `--until-idle` it exits once a round
claims nothing; otherwise it runs until killed. Each round's report is printed as a line
(`None` for a round whose dispatch failed, e.g. while the database was unreachable).
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from study.channels import build_channels
from study.config import Settings
from study.db import make_engine
from study.schedule.dispatch import DispatchPolicy, dispatch_due, dispatcher_owner
from study.scheduler import Ticker, TickTask
from tests.support.processes import ROOT
from tests.support.twilio_server import RemoteTwilio


def spawn(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    """Start `python -m tests.support.dispatcher ARGS` in its own process group, output to
    `log`. `env` comes from `server_env` plus the Twilio settings and FLOURISH_TEST_TWILIO_URL."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.dispatcher", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def rounds(log: Path) -> list[dict[str, int]]:
    """The per-round reports a dispatcher printed to `log` (failed rounds left out)."""
    found = [
        ast.literal_eval(line.removeprefix("round: "))
        for line in log.read_text().splitlines()
        if line.startswith("round: ")
    ]
    return [report for report in found if report is not None]


class OffsetClock:
    """The wall clock, `offset` ahead."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.dispatcher")
    parser.add_argument("--clock-offset-seconds", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between rounds")
    parser.add_argument("--until-idle", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    channels = build_channels(
        settings, twilio_http_client=RemoteTwilio(os.environ["FLOURISH_TEST_TWILIO_URL"])
    )
    policy = DispatchPolicy.from_settings(settings)
    clock = OffsetClock(timedelta(seconds=args.clock_offset_seconds))
    owner = dispatcher_owner()
    reports = []

    def dispatch(engine, now) -> None:
        reports.append(
            dispatch_due(
                engine, channels, settings, now=now, owner=owner, batch=args.batch, policy=policy
            )
        )

    # The scheduler's own ticker, ticked by this loop: a failing round (the database went away)
    # is logged and counted exactly as in `flourish scheduler`, and the loop carries on.
    ticker = Ticker(engine, clock, [TickTask("dispatch", dispatch)], interval_seconds=1)
    print(f"dispatcher {owner} started", flush=True)
    while True:
        reports.clear()
        ticker.tick()
        report = reports[0].as_dict() if reports else None
        print(f"round: {report}", flush=True)
        if args.until_idle and report is not None and report["claimed"] == 0:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
