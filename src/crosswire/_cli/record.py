"""``crosswire record``: capture the events of a stream with their timing (JSON lines),
for a scenario to replay (``shape = { kind = "replay", file = ..., speed = 10 }``)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import connection_args

__all__ = ["add_parser", "record_command"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "record",
        help="record the events of a JetStream stream (with timing) into a JSON-lines file",
        description="Read the events of a JetStream stream, without consuming them (an ephemeral "
        "ordered consumer), and write one JSON line per event with its time offset, type, key and payload.",
    )
    p.add_argument("output", help="the recording file (JSON lines)")
    p.add_argument("--subject", default=">", help="event types to record, e.g. 'order.>' (default: all)")
    p.add_argument("--since", type=float, help="only events from the last N seconds (default: the whole stream)")
    p.add_argument("--follow", type=float, metavar="SECONDS", help="keep recording new events for this long")
    p.add_argument("--limit", type=int, default=1_000_000, help="at most this many events (default: %(default)s)")
    p.add_argument("--prefix", default="cw", help="the stream's subject prefix (default: %(default)s)")
    connection_args(p)
    p.set_defaults(handler=record_command)


async def record_command(args: argparse.Namespace) -> int:
    from ..harness.record import record_stream

    return await record_stream(args)
