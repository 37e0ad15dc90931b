"""``crosswire load SCENARIO --app module:app``: run a traffic and chaos scenario.

Exit codes: 0 every verdict held; 1 a verdict failed; 3 the scenario could not run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "load_command"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="run a traffic and chaos scenario against an app; exit 1 if a verdict fails",
        description="Run a scenario (TOML) against an app: the node in a child process, traffic shapes "
        "and faults on schedule, every event's fate checked. Exit codes: 0 verdicts held, 1 a verdict "
        "failed, 3 could not run.",
    )
    p.add_argument("scenario", help="scenario file (TOML), e.g. examples/scenarios/poison_burst.toml")
    p.add_argument("--app", metavar="MODULE:APP", help="the app to run (default: the scenario's app)")
    p.add_argument("--transport", choices=["memory", "jetstream"], help="default: the scenario's transport")
    p.add_argument("--nats", metavar="URL", action="append", help="a NATS server (implies jetstream)")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")
    p.add_argument("--png", metavar="FILE", help="draw the report here (needs crosswire[harness])")
    p.add_argument("--html", metavar="FILE", help="one HTML page: verdicts, fates and the picture")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--duration", type=float, help="override the scenario's duration (seconds)")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the verdicts")
    p.add_argument("--node-log-level", default="ERROR", help="log level of the node process (default: %(default)s)")
    p.set_defaults(handler=load_command)


async def load_command(args: argparse.Namespace) -> int:
    from ..harness.cli import run_load

    return await run_load(args, sys.stdout)
