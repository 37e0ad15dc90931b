"""An App with an in-process handler and a Python worker, for `crosswire top`'s test."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import crosswire
from crosswire import Event, Reject

app = crosswire.App("topnode")
app.worker("pyobs", command=[sys.executable, str(Path(__file__).with_name("py_worker.py"))], timeout=5)


@app.handler("obs.done")
async def done(event: Event[Any]) -> None:
    pass


@app.handler("obs.bad", retry=crosswire.Retry(max_attempts=1))
async def bad(event: Event[Any]) -> None:
    raise Reject("bad")
