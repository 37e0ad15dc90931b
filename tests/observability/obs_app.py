"""An App for the observability tests run by `crosswire run` (cwd: this directory)."""

from __future__ import annotations

from typing import Any

import crosswire
from crosswire import Event

app = crosswire.App("obs")


@app.handler("obs.ping", retry=crosswire.Retry(max_attempts=2, initial=0.01, jitter=0.0))
async def ping(event: Event[Any]) -> None:
    if event.attempt == 1:
        raise RuntimeError("first attempt fails")
