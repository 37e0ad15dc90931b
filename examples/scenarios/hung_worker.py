"""A Python worker whose handler ignores its deadline for some events: it keeps the
delivery (and its credit) while heartbeats keep the worker 'ready'.

A ``test.hang`` event the harness marked (extension ``harnesspoison``) blocks for a
minute, swallowing the cancellation its deadline sends; other events return at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import crosswire
from crosswire.worker import Context, Worker

worker = Worker("sticky", max_in_flight=4)


@worker.handler("test.hang")
async def hang(ctx: Context, event: crosswire.Event[Any]) -> None:
    if event.extensions.get("harnesspoison"):
        loop = asyncio.get_running_loop()
        until = loop.time() + 60
        while loop.time() < until:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(until - loop.time())


if __name__ == "__main__":
    worker.run()
