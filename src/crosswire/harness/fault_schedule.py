"""The fault schedule: each fault occurrence applied at its scenario time — handler
faults switched on and off in the node, signals sent to workers, the broker and the
node process stopped and restarted — and marked for the report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import msgspec

from .node_process import NodeProcess
from .scenario import Broker, HandlerError, HandlerHang, HandlerLatency, NodeFault, Scenario, WorkerFault, label

__all__ = ["FaultHost", "fault"]

log = logging.getLogger("crosswire.harness")
_json = msgspec.json.Encoder()

_KINDS: dict[type, str] = {
    HandlerError: "handler_error",
    HandlerLatency: "handler_latency",
    HandlerHang: "handler_hang",
}


class FaultHost(Protocol):
    """What the fault schedule needs of the harness that runs it."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def node(self) -> NodeProcess | None: ...
    @property
    def active(self) -> dict[int, HandlerError | HandlerLatency | HandlerHang]: ...
    @property
    def markers(self) -> list[dict[str, Any]]: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def cluster(self) -> Any: ...
    @property
    def server(self) -> Any: ...
    @property
    def t0_mono(self) -> float: ...
    @property
    def restart_lock(self) -> asyncio.Lock: ...

    async def start_node(self) -> None: ...


def _mark(h: FaultHost, start: float, end: float, kind: str, text: str) -> None:
    h.markers.append({"t": round(start, 3), "end": round(end, 3), "kind": kind, "label": text})


async def _at(h: FaultHost, t: float) -> None:
    delay = h.t0_mono + t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _now(h: FaultHost) -> float:
    return time.monotonic() - h.t0_mono


async def fault(h: FaultHost, index: int, f: Any, at: float) -> None:
    """Apply fault ``index`` (``f``) at scenario second ``at``; a failure is a note."""
    try:
        await _fault(h, index, f, at)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        h.notes.append(f"fault {label(f)} at {at:g}s failed: {type(exc).__name__}: {exc}")
        log.exception("fault %s failed", label(f))


async def _fault(h: FaultHost, index: int, f: Any, at: float) -> None:
    await _at(h, at)
    start = _now(h)
    if isinstance(f, (HandlerError, HandlerLatency, HandlerHang)):
        h.active[index] = f
        if h.node is not None and h.node.alive:
            await h.node.send({"t": "fault", "i": index, "on": True, "f": _json.encode(f)})
        end = min(start + f.duration, h.scenario.duration)
        _mark(h, start, end, _KINDS[type(f)], label(f))
        await _at(h, at + f.duration)
        h.active.pop(index, None)
        if h.node is not None and h.node.alive:
            with contextlib.suppress(ConnectionError, OSError):
                await h.node.send({"t": "fault", "i": index, "on": False})
    elif isinstance(f, WorkerFault):
        if h.node is not None and h.node.alive:
            await h.node.send({"t": "signal", "worker": f.worker, "signal": f.signal, "pause": f.pause})
        _mark(h, start, start + (f.pause if f.signal == "SIGSTOP" else 0.0), "worker", label(f))
    elif isinstance(f, Broker) and h.cluster is not None:
        member = f.server % h.cluster.size
        if f.action == "kill":
            await h.cluster.kill(member)
        else:
            await h.cluster.stop(member)
        await asyncio.sleep(f.down)
        await h.cluster.start(member)
        _mark(h, start, _now(h), "broker", label(f))
    elif isinstance(f, Broker):
        if h.server is None:
            h.notes.append("broker fault skipped: the harness did not start the broker (--nats given)")
            return
        if f.action == "kill":
            await h.server.kill()
        else:
            await h.server.stop()
        await asyncio.sleep(f.down)
        await h.server.start()
        _mark(h, start, _now(h), "broker", label(f))
    elif isinstance(f, NodeFault):
        async with h.restart_lock:
            await _node_fault(h, f, start)


async def _node_fault(h: FaultHost, f: NodeFault, start: float) -> None:
    node = h.node
    if node is None:
        return
    if f.action == "kill":
        await node.kill()
    else:
        await node.terminate(timeout=float(h.scenario.node.get("drain_timeout", 30.0)) + 10)
    down_at = _now(h)
    await asyncio.sleep(f.down)
    await h.start_node()
    _mark(h, start, max(down_at, _now(h)), "node", label(f))
