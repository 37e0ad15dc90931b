"""Renewing leases keeps no settled event alive (the snapshot of deliveries is not held
through the sleep until the next renewal)."""

from __future__ import annotations

import asyncio
import gc

import crosswire


async def test_lease_renewal_keeps_no_settled_event_alive() -> None:
    app = crosswire.App("leases")
    gate = asyncio.Event()

    @app.handler("t.x", concurrency=1)
    async def hold(event: crosswire.Event[dict[str, int]]) -> None:
        await gate.wait()

    async with crosswire.Node(app, ack_wait=0.6) as node:  # renewed every 0.2 s
        ids = {(await node.submit("t.x", {"n": i})).id for i in range(20)}  # 19 queued behind one slot
        await asyncio.sleep(0.3)  # a renewal took its snapshot of the queued deliveries
        gate.set()
        await node.wait_idle(5)
        alive = [o for o in gc.get_objects() if isinstance(o, crosswire.Event) and o.id in ids]
        # the last delivery a loop handled may stay in its loop variable; before, all 19
        # queued ones stayed in the renewal's snapshot until the next renewal
        assert len(alive) <= 1, f"{len(alive)} settled events still referenced"
