"""``crosswire submit``: submit one event; prints its id once the transport accepted it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from .._envelope import Event
from .._subjects import validate_type
from .common import UserError, connection_args, make_transport

__all__ = ["add_parser", "submit_command"]


def add_parser(sub: Any) -> None:
    submit = sub.add_parser(
        "submit", help="submit one event", description="Submit one event; prints its id once the transport accepted it."
    )
    submit.add_argument("type", help="event type, e.g. order.created")
    submit.add_argument("--data", default=None, help="payload as JSON (sent as application/json)")
    submit.add_argument("--key", help="order key (events with one key are handled in order)")
    submit.add_argument("--id", help="event id (default: generated); resubmitting an id is stored once")
    submit.add_argument("--source", default="/crosswire/cli", help="CloudEvents source (default: %(default)s)")
    submit.add_argument(
        "--traceparent",
        help="W3C traceparent to continue (default: a new trace); the trace id is printed on stderr",
    )
    connection_args(submit)

    submit.set_defaults(handler=submit_command)


async def submit_command(args: argparse.Namespace) -> int:
    data: bytes | None = None
    content_type = None
    if args.data is not None:
        try:
            msgspec.json.decode(args.data)
        except msgspec.DecodeError as exc:
            raise UserError(f"--data is not valid JSON: {exc}") from None
        data, content_type = args.data.encode(), "application/json"
    try:
        validate_type(args.type)
        event = Event.new(
            args.type,
            data,
            source=args.source,
            id=args.id,
            key=args.key,
            datacontenttype=content_type,
            traceparent=args.traceparent,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    from .._observability.submit import traced_publish

    async with make_transport(args) as transport:
        trace_id = await traced_publish(transport, event)
    print(event.id)
    print(f"trace_id {trace_id}", file=sys.stderr)
    return 0
