"""A Python worker whose handler ignores its deadline for some events: it keeps the
delivery (and its credit) while heartbeats keep the worker 'ready'.

``test.hang`` with payload ``{"hang": true}`` blocks for a minute, swallowing the
cancellation its deadline sends; other ``test.hang`` events return at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

import crosswire
from crosswire.worker import Context, Worker

worker = Worker("sticky", max_in_flight=4)


@worker.handler("test.hang")
async def hang(ctx: Context, event: crosswire.Event[Any]) -> None:
    payload = msgspec.msgpack.decode(event.data) if event.data else {}
    if isinstance(payload, dict) and payload.get("hang"):
        loop = asyncio.get_running_loop()
        until = loop.time() + 60
        while loop.time() < until:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(until - loop.time())


if __name__ == "__main__":
    worker.run()
