"""A node's worker side in its own process, so its RSS can be measured from outside.

``python hostile_node.py`` starts a :class:`WorkerHub` with one spawned Python
conformance worker, prints ``ready <socket path>`` and serves until stdin closes.
Each line ``gc`` on stdin is answered with ``objects <count of live WorkerConnection>
<worker state>``, counted without a collection (what reference cycles would keep
alive); ``pid`` with ``pid <worker pid> <restarts>``.
"""

from __future__ import annotations

import asyncio
import gc
import sys

from crosswire._workers import WorkerHub, WorkerPool, WorkerSpec
from crosswire._workers.connection import WorkerConnection


async def main() -> None:
    async with WorkerHub("hostile") as hub:
        pool = WorkerPool(
            WorkerSpec(name="real", command=(sys.executable, "-m", "crosswire.testworker", "--name", "real")), hub
        )
        await pool.start()
        print("ready", hub.path, flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"gc":
                live = sum(1 for o in gc.get_objects() if isinstance(o, WorkerConnection))
                print("objects", live, pool.statistics().state, flush=True)
            elif line.strip() == b"pid":
                print("pid", pool.pid, pool.statistics().restarts, flush=True)
        await pool.close()


if __name__ == "__main__":
    gc.disable()  # what is freed must be freed by reference counting alone
    asyncio.run(main())
