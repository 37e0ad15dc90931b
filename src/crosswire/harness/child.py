"""The node process the harness runs: ``python -m crosswire.harness.child``.

It loads the user's app, adds the fault/recording middleware to every binding, runs
a :class:`~crosswire.Node` and talks to the harness over the control channel. It is
a separate process so that node faults (SIGKILL, SIGTERM) are real.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import msgspec

from .._app import App
from .._envelope import Event, decode_event
from .._exceptions import CrosswireError
from .._node import Node
from .._types import Handler, Middleware
from .appload import load_app
from .control import Channel
from .faults import FaultMiddleware
from .scenario import HandlerError, HandlerHang, HandlerLatency

__all__ = ["install_middleware", "load_app", "main", "rss_bytes"]

log = logging.getLogger("crosswire.harness")
_fault_decoder = msgspec.json.Decoder(HandlerError | HandlerLatency | HandlerHang)


def install_middleware(app: App, middleware: Middleware) -> type[Node]:
    """Put ``middleware`` innermost on every binding of ``app`` (closest to the handler,
    inside the timeout, where it sees every handler run); returns the Node class to run it.

    Uses the binding policies' middleware slot; on a crosswire without one it wraps
    each binding's adapter, which is the same position.
    """
    configs: list[Any] = [*app.handlers, *app.workers]
    if all(hasattr(c.policies, "middleware") for c in configs):

        def add(config: Any) -> Any:
            policies = msgspec.structs.replace(config.policies, middleware=(*config.policies.middleware, middleware))
            return msgspec.structs.replace(config, policies=policies)

        app.handlers[:] = [add(c) for c in app.handlers]
        app.workers[:] = [add(c) for c in app.workers]
        return Node

    class HarnessNode(Node):
        def _add_binding(self, name: str, pattern: str, handler: Handler, *args: Any, **kwargs: Any) -> Any:
            return super()._add_binding(name, pattern, middleware(handler), *args, **kwargs)  # type: ignore[misc, unused-ignore]

    if not hasattr(Node, "_add_binding") or len(inspect.signature(Node._add_binding).parameters) < 4:
        raise RuntimeError("this crosswire has no place for harness middleware")
    return HarnessNode


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value, enc_hook=str, str_keys=True)


class _Child:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._runs_fd = os.open(args.runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        enc = msgspec.json.Encoder()
        fd = self._runs_fd

        def sink(run: Any) -> None:
            os.write(fd, enc.encode(run) + b"\n")

        self.mw = FaultMiddleware(args.seed, sink)
        self.node: Node | None = None
        self.chan: Channel | None = None
        self.stopping = asyncio.Event()

    def _transport(self) -> Any:
        import crosswire

        if self.args.transport == "memory":
            return crosswire.MemoryTransport()
        return crosswire.JetStreamTransport(
            self.args.nats.split(","),
            stream=self.args.stream,
            subject_prefix=self.args.prefix,
            replicas=self.args.replicas,
        )

    async def run(self) -> int:
        reader, writer = await asyncio.open_unix_connection(self.args.socket)
        self.chan = chan = Channel(reader, writer)
        app = load_app(self.args.app)
        node_cls = install_middleware(app, self.mw)
        options = json.loads(self.args.node_options or "{}")
        node = self.node = node_cls(app, self._transport(), **options)
        try:
            await node.start()
        except (CrosswireError, OSError) as exc:
            await chan.send({"t": "error", "message": f"node did not start: {type(exc).__name__}: {exc}"})
            return 3
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        types = json.loads(self.args.types or "[]")
        await chan.send(
            {
                "t": "hello",
                "pid": os.getpid(),
                "bindings": {
                    b.name: {"pattern": b.pattern, "runtime": b.runtime, "max_attempts": b.policies.retry.max_attempts}
                    for b in node.bindings
                },
                "routes": {t: [b.name for b in node.router.route(t)] for t in types},
            }
        )
        tasks = [asyncio.create_task(self._report()), asyncio.create_task(self._commands())]
        await self.stopping.wait()
        tasks[1].cancel()
        report = await node.drain()
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._flush()
            await chan.send({"t": "drained", "missed": report.deadline_missed, "returned": report.returned})
            await chan.close()
        return 1 if report.deadline_missed else 0

    async def _flush(self) -> None:
        """Runs go to the runs file as they end; nothing to send."""

    async def _report(self) -> None:
        assert self.chan is not None and self.node is not None
        last_stats = 0.0
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if now - last_stats >= 0.5:
                last_stats = now
                await self.chan.send(
                    {"t": "stats", "at": time.time(), "rss": rss_bytes(), "s": _builtins(self.node.statistics())}
                )

    async def _commands(self) -> None:
        assert self.chan is not None and self.node is not None
        _node, chan = self.node, self.chan
        while True:
            msg = await chan.recv()
            if msg is None:
                self.stopping.set()
                return
            kind = msg.get("t")
            if kind == "submit":
                events = []
                for raw in msg["e"]:
                    try:
                        events.append(decode_event(raw))
                    except CrosswireError as exc:  # never from the harness; said, not fatal
                        log.error("harness sent an event that does not decode: %s", exc)
                await self._submit(events)
            elif kind == "fault":
                if msg["on"]:
                    self.mw.activate(int(msg["i"]), _fault_decoder.decode(msg["f"]))
                else:
                    self.mw.deactivate(int(msg["i"]))
            elif kind == "signal":
                await chan.send({"t": "signalled", **self._signal(msg)})
            elif kind == "letters":
                await self._flush()
                await chan.send({"t": "letters", "l": await self._letters()})
            elif kind == "stop":
                self.stopping.set()
                return

    async def _submit(self, events: list[Event[Any]]) -> None:
        assert self.node is not None and self.chan is not None
        try:
            await self.node.submit_events(events)
        except (CrosswireError, ValueError) as exc:
            await self.chan.send(
                {"t": "refused", "ids": [e.id for e in events], "error": f"{type(exc).__name__}: {exc}"}
            )

    def _signal(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.node is not None
        workers = _builtins(self.node.statistics()).get("workers") or {}
        name = msg["worker"]
        pid = (workers.get(name) or {}).get("pid")
        if not pid:
            return {"worker": name, "ok": False, "why": f"no running process for worker {name!r}"}
        sig = signal.Signals[msg["signal"]]
        try:
            os.kill(int(pid), sig)
        except OSError as exc:
            return {"worker": name, "ok": False, "why": str(exc)}
        if sig is signal.SIGSTOP:
            asyncio.get_running_loop().call_later(float(msg.get("pause", 2.0)), _cont, int(pid))
        return {"worker": name, "ok": True, "pid": pid, "signal": sig.name}

    async def _letters(self) -> list[list[Any]]:
        assert self.node is not None
        out: list[list[Any]] = []
        for letter in await self.node.dead_letters.list(limit=10_000_000):
            event = letter.event
            if event is None:
                continue
            original = str(event.extensions.get("replayof", event.id))
            out.append([original, letter.binding, letter.error.code.value, len(letter.attempts)])
        return out


def _cont(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGCONT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crosswire.harness.child")
    p.add_argument("--app", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--runs", required=True, help="append each handler run here, one JSON array per line")
    p.add_argument("--transport", choices=["memory", "jetstream"], default="memory")
    p.add_argument("--nats", default="")
    p.add_argument("--stream", default="CROSSWIRE")
    p.add_argument("--prefix", default="cw")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--types", default="[]")
    p.add_argument("--node-options", default="{}")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="node %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return asyncio.run(_Child(args).run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
