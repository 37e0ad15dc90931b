"""``crosswire dlq list|show|replay|purge``: inspect and replay dead letters."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import msgspec

from .._deadletter import DeadLetter
from .._jsonform import event_to_dict
from .._replay import DeadLetters
from .common import UserError, connection_args, make_transport

__all__ = ["add_parser", "dlq_command"]


def add_parser(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list, show, replay or purge dead letters")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    d_list = dsub.add_parser("list", help="list dead letters, oldest first")
    d_list.add_argument("--binding")
    d_list.add_argument("--type")
    d_list.add_argument("--limit", type=int, default=100)
    d_list.add_argument("--json", action="store_true", help="one JSON object per line")
    d_show = dsub.add_parser("show", help="show one dead letter: event, error, attempts, replays")
    d_show.add_argument("letter_id")
    d_replay = dsub.add_parser("replay", help="replay dead letters to the binding that gave up on them")
    d_replay.add_argument("letter_id", nargs="?")
    d_replay.add_argument("--binding")
    d_replay.add_argument("--type")
    d_replay.add_argument("--all", action="store_true", help="replay every dead letter")
    d_replay.add_argument("--limit", type=int, default=100, help="at most this many (default: %(default)s)")
    d_purge = dsub.add_parser("purge", help="delete dead letters")
    d_purge.add_argument("letter_ids", nargs="*")
    d_purge.add_argument("--all", action="store_true", help="delete every dead letter")
    for p in (d_list, d_show, d_replay, d_purge):
        connection_args(p)
    dlq.set_defaults(handler=dlq_command)


def _letter_summary(letter: DeadLetter) -> dict[str, Any]:
    status = "replayed" if letter.replays and letter.replays[-1].at >= letter.dead_at else "dead"
    return {
        "id": letter.id,
        "binding": letter.binding,
        "type": letter.event_type,
        "event_id": letter.event.id if letter.event else None,
        "code": letter.error.code.value,
        "message": letter.error.message,
        "attempts": len(letter.attempts),
        "replays": len(letter.replays),
        "status": status,
        "dead_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(letter.dead_at)),
    }


async def dlq_command(args: argparse.Namespace) -> int:
    # list and show only read: they must not create or change streams or consumers
    async with make_transport(args, read_only=args.dlq_command in ("list", "show")) as transport:
        letters = DeadLetters(transport.dead_letter_store(), transport.publish)
        action = args.dlq_command
        if action == "list":
            found = await letters.list(binding=args.binding, type=args.type, limit=args.limit)
            if args.json:
                for item in found:
                    print(json.dumps(_letter_summary(item)))
            else:
                _print_table([_letter_summary(x) for x in found])
            return 0
        if action == "show":
            letter = await letters.get(args.letter_id)
            if letter is None:
                raise UserError(f"no dead letter {args.letter_id!r}")
            out = _letter_summary(letter)
            out["event"] = event_to_dict(letter.event) if letter.event else None
            out["raw_hex"] = letter.raw.hex() if letter.raw else None
            out["error"] = msgspec.to_builtins(letter.error)
            out["attempt_history"] = msgspec.to_builtins(letter.attempts)
            out["replay_history"] = msgspec.to_builtins(letter.replays)
            print(json.dumps(out, indent=2, default=str))
            return 0
        if action == "replay":
            if not (args.letter_id or args.binding or args.type or args.all):
                raise UserError("replay needs a LETTER_ID, --binding, --type or --all")
            result = await letters.replay(
                args.letter_id, binding=args.binding, type=args.type, all=args.all, limit=args.limit
            )
            for letter_id in result.replayed:
                print(f"replayed {letter_id}")
            for letter_id, why in result.skipped.items():
                print(f"skipped  {letter_id}: {why}")
            return 0
        if action == "purge":
            if not args.letter_ids and not args.all:
                raise UserError("purge needs LETTER_IDs or --all")
            n = await letters.purge(None if args.all else args.letter_ids)
            print(f"purged {n}")
            return 0
    raise UserError(f"unknown dlq action {action!r}")  # pragma: no cover - argparse prevents it


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no dead letters")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("id", "type", "code", "attempts", "replays", "status", "dead_at", "message"):
        table.add_column(column, no_wrap=column != "message", overflow="ellipsis" if column == "message" else "fold")
    for row in rows:
        table.add_row(
            *(str(row[c]) for c in ("id", "type", "code", "attempts", "replays", "status", "dead_at", "message"))
        )
    Console(width=None if sys.stdout.isatty() else 240).print(table)
