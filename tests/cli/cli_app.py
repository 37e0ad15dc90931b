"""An App for the CLI tests: handlers write what they saw to $CLI_TEST_OUT."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import crosswire
from crosswire import Event, Reject

app = crosswire.App("clitest")
OUT = os.environ.get("CLI_TEST_OUT", "/dev/null")


@app.handler("cli.job", retry=crosswire.Retry(max_attempts=2, initial=0.01))
async def job(event: Event[dict[str, Any]]) -> None:
    if event.payload.get("bad"):
        raise Reject(f"job {event.payload.get('n')} is bad")
    with open(OUT, "a") as f:  # noqa: ASYNC230 - a test fixture, tiny writes
        f.write(f"{event.payload['n']}\n")


@app.handler("cli.slow", timeout=60)
async def slow(event: Event[Any]) -> None:
    await asyncio.sleep(30)
