"""The event loop a benchmark runs on: ``--loop asyncio`` (asyncio's own) or
``--loop uvloop`` (the ``crosswire[fast]`` extra)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

LOOPS = ("asyncio", "uvloop")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner(loop_factory=...)`` takes for ``name``; exits with a
    one-line message when uvloop is asked for and not installed."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        sys.exit("--loop uvloop: uvloop is not installed (pip install 'crosswire[fast]')")
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
