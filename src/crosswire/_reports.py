"""What a node reports about itself (:class:`NodeStatistics`, :class:`DrainReport`),
and the part of a drain that finishes or hands back the dispatchers' work."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

import msgspec

from ._binding import BindingStatistics
from ._dispatcher import Dispatcher
from ._lifecycle import State
from ._settle import hand_back
from ._transports.base import Delivery
from ._workers.spec import WorkerStatistics

__all__ = ["DrainReport", "NodeStatistics", "drain_dispatchers"]


@dataclasses.dataclass(frozen=True)
class DrainReport:
    """How a drain went. ``deadline_missed`` ⇒ ``returned`` deliveries were handed back."""

    finished: int
    returned: int
    deadline_missed: bool
    seconds: float


class NodeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    state: State
    submitted: int
    pending: int
    """(event, binding) pairs submitted through this node and not yet settled."""
    pending_bytes: int
    in_flight: int
    bindings: dict[str, BindingStatistics]
    workers: dict[str, WorkerStatistics] = {}
    """Worker name -> its pool's statistics (:class:`WorkerStatistics`)."""
    worker_socket: str | None = None
    """Where external workers connect (``None``: no workers configured)."""
    transport: Any = None
    """The transport's own statistics, if it keeps any."""
    idempotency: Any = None
    """The dedup store's statistics, if it keeps any (the JetStream KV store: claims by
    result, leases held, ``done_unconfirmed`` markers)."""


async def drain_dispatchers(dispatchers: list[Dispatcher[Delivery]], deadline: float) -> tuple[int, int, bool]:
    """Let the dispatchers finish what they hold until ``deadline`` (monotonic), then hand
    back what is queued and cancel what still runs (the settler hands those back).
    Returns (finished, returned, deadline missed)."""
    before = sum(d.processed for d in dispatchers)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            await asyncio.gather(*(d.wait_idle() for d in dispatchers))
    returned = 0
    missed = False
    for dispatcher in dispatchers:
        left = dispatcher.drain_queued()
        if left or dispatcher.running:
            missed = True
        for delivery in left:
            await hand_back(delivery)  # never started
            returned += 1
        returned += dispatcher.running  # cancelled by stop(); the settler hands them back
        await dispatcher.stop()
    return sum(d.processed for d in dispatchers) - before, returned, missed
