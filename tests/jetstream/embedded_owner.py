"""Starts an EmbeddedServer, prints the server's pid, then waits to be killed."""

from __future__ import annotations

import asyncio
import sys

from crosswire.jetstream import EmbeddedServer


async def main() -> None:
    server = EmbeddedServer(sys.argv[1])
    await server.start()
    print(server.pid, flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
