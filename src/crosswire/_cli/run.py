"""``crosswire run``: run a node for an App until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import msgspec

from .._exceptions import CrosswireError
from .common import UserError, connection_args, load_app, make_transport, server_file

__all__ = ["LOOPS", "add_parser", "loop_factory", "run_command"]

log = logging.getLogger("crosswire.cli")

#: ``--loop`` choices; ``auto``: uvloop when it is importable, else asyncio's loop.
LOOPS = ("auto", "asyncio", "uvloop")


def add_parser(sub: Any) -> None:
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
        "--loop",
        choices=LOOPS,
        default="auto",
        help="the event loop: uvloop (needs crosswire[fast]), asyncio's own, or auto: uvloop when it is "
        "installed, else asyncio (default: %(default)s)",
    )
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
    run.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=None,
        help="export traces over OTLP/HTTP to this base URL, e.g. http://localhost:4318 "
        "(default: $OTEL_EXPORTER_OTLP_ENDPOINT; needs crosswire[otlp])",
    )
    run.add_argument(
        "--worker-socket",
        default=None,
        metavar="PATH",
        help="the Unix socket external workers connect to (default: a fresh private directory; logged at start)",
    )
    js = run.add_argument_group("JetStream consumers and streams")
    js.add_argument(
        "--ack-wait", type=float, default=30.0, metavar="SECONDS", help="lease of a delivery (default: %(default)s)"
    )
    js.add_argument(
        "--start",
        default=None,
        metavar="new|all|TIME",
        help="where a consumer group created now starts: new events, all the stream holds, or an ISO 8601 time "
        "(default: all on a stream nobody consumed yet, else new)",
    )
    js.add_argument("--prefetch-bytes", type=int, default=None, metavar="BYTES", help="per binding (default 64 MiB)")
    js.add_argument("--replicas", type=int, default=None, help="replicas of streams this node creates (default 1)")
    js.add_argument("--max-age", type=float, default=None, metavar="SECONDS", help="of a stream this node creates")
    js.add_argument(
        "--duplicate-window", type=float, default=None, metavar="SECONDS", help="of a stream this node creates"
    )
    js.add_argument(
        "--strict-stream",
        action="store_true",
        default=None,
        help="refuse to start if an existing stream's settings differ (default: warn, use it as it is)",
    )
    connection_args(run)
    run.set_defaults(handler=run_command, loop_factory=loop_factory)


def loop_factory(args: argparse.Namespace) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What creates the event loop ``run`` runs on (``None``: asyncio's default).

    :raises UserError: ``--loop uvloop`` and uvloop is not installed.
    """
    if args.loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if args.loop == "auto":
            return None
        raise UserError("--loop uvloop: uvloop is not installed (pip install 'crosswire[fast]')") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def run_command(args: argparse.Namespace) -> int:
    from .._node import Node

    app = load_app(args.app)
    if args.otlp_endpoint:
        from .._observability.otlp import configure

        configure(app.name, endpoint=args.otlp_endpoint)
    transport: Any
    if args.memory:
        from .._transports.memory import MemoryTransport

        transport = MemoryTransport()
    else:
        transport = make_transport(args, for_run=True)
    node = Node(
        app, transport, drain_timeout=args.drain_timeout, ack_wait=args.ack_wait, worker_socket=args.worker_socket
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except CrosswireError as exc:
        raise UserError(f"could not start: {exc}") from None
    server = getattr(transport, "server", None)
    info_file = None
    if server is not None and server.running:
        info_file = server_file(args.data_dir)
        info_file.write_text(json.dumps({"url": server.url, "pid": server.pid}))
    elif args.memory:  # other commands on this data dir must know they cannot reach it
        info_file = server_file(args.data_dir)
        info_file.parent.mkdir(parents=True, exist_ok=True)
        info_file.write_text(json.dumps({"memory": True, "pid": os.getpid(), "app": app.name}))
    where = "memory" if args.memory else (server.url + " (embedded)" if server is not None else str(args.nats))
    loop_name = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
    log.info("node %s ready on %s with %d bindings (%s event loop)", app.name, where, len(node.bindings), loop_name)
    for binding in node.bindings:
        log.info("  %-40s %-24s %s", binding.name, binding.pattern, binding.runtime)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        from .._metrics import metrics_registry

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
    if info_file is not None:
        with contextlib.suppress(OSError):
            info_file.unlink()
    log.info("stopped: %d finished, %d handed back, %.2fs", report_.finished, report_.returned, report_.seconds)
    if report_.deadline_missed:
        log.error("drain deadline of %.1fs missed", args.drain_timeout)
        return 1
    return 0
