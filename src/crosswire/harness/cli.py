"""The command-line side of the harness (``crosswire load``): views, summary, files."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import msgspec

from .._exceptions import ConfigurationError
from .report import write_html, write_json, write_png
from .runner import HarnessError, run
from .scenario import load

__all__ = ["print_summary", "run_load"]


def print_summary(report: dict[str, Any], out: TextIO) -> None:
    f = report["fates"]
    lat = report["latency_ms"]
    print(
        f"{report['scenario']['name']}: offered {f['offered']}, handled {f['handled']}, dead-lettered "
        f"{f['dead_lettered']} {f['dead_letter_codes'] or ''}, lost {f['lost']}, duplicates {f['duplicates']}, "
        f"refused {f['refused']}; runs {f['runs']} ({f['failed_runs']} failed); healthy p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms; peak node RSS {report['peak_rss_mb']} MB; {report['seconds']:.1f} s",
        file=out,
    )
    fu = f.get("follow_ups") or {}
    if any(fu.values()):
        print(
            f"  follow-ups (events the handlers emitted, per binding): handled {fu['handled']}, "
            f"dead-lettered {fu['dead_lettered']}, lost {fu['lost']}",
            file=out,
        )
    for v in report["verdicts"]:
        mark = "PASS" if v["ok"] else "FAIL"
        print(f"  {mark} {v['name']}: {v['actual']} (expected {v['expected']})", file=out)
        if not v["ok"]:
            for line in v["detail"][:5]:
                print(f"       {line}", file=out)
    for note in report["notes"]:
        print(f"  note: {note}", file=out)
    if not report["ok"] and report.get("node_log_tail"):
        print("  node log (last lines):", file=out)
        for line in report["node_log_tail"].splitlines()[-15:]:
            print(f"    {line}", file=out)


async def run_load(args: argparse.Namespace, out: TextIO) -> int:
    from .._cli.common import UserError

    try:
        scenario = load(args.scenario)
        changes: dict[str, Any] = {}
        if args.seed is not None:
            changes["seed"] = args.seed
        if args.duration is not None:
            changes["duration"] = args.duration
        if changes:
            scenario = msgspec.structs.replace(scenario, **changes)
    except ConfigurationError as exc:
        raise UserError(str(exc)) from None
    view: Any = None
    if not args.quiet:
        if out.isatty() and not args.plain:
            from .view import LiveView

            view = LiveView(scenario.name)
        else:
            from .view import PlainView

            view = PlainView(out)
    try:
        result = await run(
            scenario,
            app=args.app,
            transport="jetstream" if args.nats and not args.transport else args.transport,
            nats=args.nats,
            on_tick=view,
            node_log_level=args.node_log_level,
        )
    except (HarnessError, ConfigurationError) as exc:
        raise UserError(str(exc)) from None
    finally:
        if view is not None:
            view.close()
    if args.report:
        write_json(result.report, args.report)
    if args.png:
        try:
            write_png(result.report, args.png)
        except RuntimeError as exc:
            raise UserError(str(exc)) from None
    if getattr(args, "html", None):
        write_html(result.report, args.html)
    print_summary(result.report, out)
    return 0 if result.ok else 1
