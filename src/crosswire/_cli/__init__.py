"""The ``crosswire`` command line.

::

    crosswire run module:app [--nats URL] [--memory]     run a node (embedded JetStream by default)
    crosswire submit TYPE --data JSON [--key K]          submit one event
    crosswire dlq list|show|replay|purge                 dead letters

Exit codes: 0 ok; 1 the drain deadline was missed; 2 usage error; 3 could not start
(bad module, server unreachable, ...). User mistakes print one line, no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .._exceptions import ConfigurationError, CrosswireError
from . import codegen, dlq, load, record, run, schema, submit, top
from .common import UserError, configure_logging

__all__ = ["build_parser", "main"]

#: Each subcommand module has ``add_parser(subparsers)``, which sets ``handler``.
COMMANDS = (run, submit, dlq, load, record, schema, codegen, top)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crosswire",
        description="Compose asynchronous event handlers across Python, Go and Rust.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  crosswire run examples.orders.app:app              # embedded JetStream in ./.crosswire\n"
            "  crosswire run myapp:app --nats nats://n1:4222 --creds app.creds\n"
            "  crosswire submit order.created --data '{\"order_id\": 1}' --key order-1\n"
            "  crosswire dlq list\n"
            "  crosswire dlq replay --binding validate --limit 10\n"
            "\nexit codes: 0 ok, 1 drain deadline missed, 2 usage error, 3 could not start or act"
        ),
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default: INFO)")
    parser.add_argument("--log-json", action="store_true", help="structured JSON log lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_json)
        select_loop = getattr(args, "loop_factory", None)  # run --loop
        with asyncio.Runner(loop_factory=select_loop(args) if select_loop is not None else None) as runner:
            return int(runner.run(args.handler(args)))
    except UserError as exc:
        print(f"crosswire: {exc}", file=sys.stderr)
        if exc.__cause__ is not None:  # e.g. the user module's own traceback
            logging.getLogger("crosswire.cli").debug("caused by:", exc_info=exc.__cause__)
        return 3
    except (CrosswireError, ConfigurationError) as exc:
        print(f"crosswire: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
