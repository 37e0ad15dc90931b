"""An App for the ``run --loop`` tests: its init hook writes the running loop's type to $CLI_LOOP_OUT."""

from __future__ import annotations

import asyncio
import os

import crosswire

app = crosswire.App("looptest")


@app.on_init
async def record_loop() -> None:
    loop = asyncio.get_running_loop()
    with open(os.environ["CLI_LOOP_OUT"], "w") as f:  # noqa: ASYNC230 - a test fixture, one tiny write
        f.write(f"{type(loop).__module__}.{type(loop).__qualname__}")
