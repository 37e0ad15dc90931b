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
import contextlib
import importlib
import json
import logging
import os
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from ._app import App
from ._deadletter import DeadLetter
from ._deadletters import DeadLetters
from ._envelope import Event, event_to_dict
from ._exceptions import ConfigurationError, CrosswireError
from ._subjects import validate_type

__all__ = ["main"]

log = logging.getLogger("crosswire.cli")
SERVER_FILE = "server.json"  # written in the data dir by `crosswire run` with an embedded server


class UserError(Exception):
    """A mistake of the caller: printed as one line, exit code 3."""


# -- argument parsing ----------------------------------------------------------------------


def _connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where events live")
    g.add_argument(
        "--nats",
        metavar="URL",
        action="append",
        help="NATS server or cluster URL (repeat for several seeds); default: the embedded local server",
    )
    g.add_argument(
        "--data-dir",
        default=os.environ.get("CROSSWIRE_DATA_DIR", ".crosswire"),
        help="embedded server's JetStream data directory (default: %(default)s)",
    )
    g.add_argument("--stream", default="CROSSWIRE", help="JetStream stream name (default: %(default)s)")
    g.add_argument("--user", help="NATS user name")
    g.add_argument(
        "--password",
        default=os.environ.get("CROSSWIRE_NATS_PASSWORD"),
        help="NATS password (or $CROSSWIRE_NATS_PASSWORD)",
    )
    g.add_argument(
        "--token", default=os.environ.get("CROSSWIRE_NATS_TOKEN"), help="NATS token (or $CROSSWIRE_NATS_TOKEN)"
    )
    g.add_argument("--creds", metavar="FILE", help="NATS credentials file (.creds)")
    g.add_argument("--nkey", metavar="FILE", help="NKEYS seed file")
    g.add_argument("--tls-ca", metavar="FILE", help="CA bundle to verify the server")
    g.add_argument("--tls-cert", metavar="FILE", help="client certificate (mutual TLS)")
    g.add_argument("--tls-key", metavar="FILE", help="client key (mutual TLS)")


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

    run = sub.add_parser(
        "run",
        help="run a node for an App, until SIGTERM/SIGINT",
        description="Run a node: start its workers, consume and handle events, "
        "drain on SIGTERM/SIGINT. Exits 1 if the drain deadline is missed.",
    )
    run.add_argument("app", metavar="MODULE:APP", help="e.g. examples.orders.app:app (APP defaults to 'app')")
    run.add_argument(
        "--memory",
        action="store_true",
        help="use the in-process memory transport (nothing durable; for trying things out)",
    )
    run.add_argument("--fsync", action="store_true", help="embedded server: fsync every write")
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a drain may take (default: %(default)s)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on this port (default: off)",
    )
    run.add_argument(
        "--stats-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="log node statistics periodically (default: off)",
    )
    _connection_args(run)

    submit = sub.add_parser(
        "submit", help="submit one event", description="Submit one event; prints its id once the transport accepted it."
    )
    submit.add_argument("type", help="event type, e.g. order.created")
    submit.add_argument("--data", default=None, help="payload as JSON (sent as application/json)")
    submit.add_argument("--key", help="order key (events with one key are handled in order)")
    submit.add_argument("--id", help="event id (default: generated); resubmitting an id is stored once")
    submit.add_argument("--source", default="/crosswire/cli", help="CloudEvents source (default: %(default)s)")
    _connection_args(submit)

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
        _connection_args(p)
    return parser


# -- helpers ---------------------------------------------------------------------------------


def load_app(spec: str) -> App:
    """Import ``module:attr`` (attr defaults to ``app``) from the current directory."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise UserError(f"expected MODULE:APP, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UserError(f"cannot import module {module_name!r}: {exc}") from None
        raise
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise UserError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(app, App):
        raise UserError(f"{spec} is a {type(app).__name__}, not a crosswire.App")
    return app


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls_ca or args.tls_cert):
        return None
    ctx = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_cert:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    return ctx


def _server_file(data_dir: str) -> Path:
    return Path(data_dir) / SERVER_FILE


def _running_embedded_url(data_dir: str) -> str | None:
    """The URL of an embedded server a `crosswire run` started on this data dir, if alive."""
    path = _server_file(data_dir)
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def make_transport(args: argparse.Namespace, *, for_run: bool = False) -> Any:
    from ._jetstream import JetStreamTransport

    url: Any = args.nats
    if url is None and not for_run:
        url = _running_embedded_url(args.data_dir)  # share the running node's server
    if isinstance(url, list) and len(url) == 1:
        url = url[0]
    return JetStreamTransport(
        url,
        data_dir=args.data_dir,
        stream=args.stream,
        user=args.user,
        password=args.password,
        token=args.token,
        credentials=args.creds,
        nkeys_seed=args.nkey,
        tls=_tls(args),
        fsync=getattr(args, "fsync", False),
    )


def _configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        raise UserError(f"unknown log level {level!r}") from None


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("event_id", "correlation_id", "trace_id", "binding"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


# -- commands --------------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    from ._node import Node

    app = load_app(args.app)
    transport: Any
    if args.memory:
        from ._transports.memory import MemoryTransport

        transport = MemoryTransport()
    else:
        transport = make_transport(args, for_run=True)
    node = Node(app, transport, drain_timeout=args.drain_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except CrosswireError as exc:
        raise UserError(f"could not start: {exc}") from None
    server = getattr(transport, "server", None)
    server_file = None
    if server is not None and server.running:
        server_file = _server_file(args.data_dir)
        server_file.write_text(json.dumps({"url": server.url, "pid": server.pid}))
    where = "memory" if args.memory else (server.url + " (embedded)" if server is not None else str(args.nats))
    log.info("node %s ready on %s with %d bindings", app.name, where, len(node.bindings))
    for binding in node.bindings:
        log.info("  %-40s %-24s %s", binding.name, binding.pattern, binding.runtime)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        from ._metrics import metrics_registry

        try:
            start_http_server(args.metrics_port, addr="127.0.0.1", registry=metrics_registry(node))
        except OSError as exc:
            await node.drain()
            raise UserError(f"cannot serve metrics on port {args.metrics_port}: {exc}") from None
        log.info("metrics on http://127.0.0.1:%d/metrics", args.metrics_port)
    stats_task = None
    if args.stats_every > 0:

        async def report() -> None:
            while True:
                await asyncio.sleep(args.stats_every)
                log.info("stats %s", json.dumps(msgspec.to_builtins(node.statistics())))

        stats_task = asyncio.create_task(report())
    await stop.wait()
    log.info("draining (deadline %.1fs)", args.drain_timeout)
    if stats_task is not None:
        stats_task.cancel()
    report_ = await node.drain()
    if server_file is not None:
        with contextlib.suppress(OSError):
            server_file.unlink()
    log.info("stopped: %d finished, %d handed back, %.2fs", report_.finished, report_.returned, report_.seconds)
    if report_.deadline_missed:
        log.error("drain deadline of %.1fs missed", args.drain_timeout)
        return 1
    return 0


async def cmd_submit(args: argparse.Namespace) -> int:
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
        event = Event.new(args.type, data, source=args.source, id=args.id, key=args.key, datacontenttype=content_type)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    async with make_transport(args) as transport:
        await transport.publish([event])
    print(event.id)
    return 0


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


async def cmd_dlq(args: argparse.Namespace) -> int:
    async with make_transport(args) as transport:
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging(args.log_level, args.log_json)
        command = {"run": cmd_run, "submit": cmd_submit, "dlq": cmd_dlq}[args.command]
        return asyncio.run(command(args))
    except UserError as exc:
        print(f"crosswire: {exc}", file=sys.stderr)
        return 3
    except (CrosswireError, ConfigurationError) as exc:
        print(f"crosswire: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
