"""The timeout policy: bound each attempt by a deadline.

The attempt's deadline is the earlier of ``now + seconds`` and the event's own
``deadline`` (unix ms, set by the producer). It is written into ``Attempt.deadline``
so adapters can pass it on (a worker process gets it in ``DELIVER``), and enforced
here too, so a handler that ignores it is still bounded.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from ._errorinfo import ErrorCode, ErrorInfo
from ._exceptions import ConfigurationError
from ._types import Attempt, Handler, Outcome

__all__ = ["Timeout"]


class Timeout(msgspec.Struct, frozen=True):
    """Fail an attempt with ``timeout`` (retryable) after ``seconds``."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.seconds}")

    def __call__(self, inner: Handler) -> Handler:
        seconds = self.seconds

        async def timed(attempt: Attempt) -> Outcome:
            now = time.monotonic()
            deadline = now + seconds
            event_deadline = attempt.event.deadline
            if event_deadline is not None:
                deadline = min(deadline, now + (event_deadline / 1000.0 - time.time()))
            attempt.deadline = deadline
            if deadline <= now:
                return Outcome(error=_expired(seconds, event_deadline is not None))
            try:
                async with asyncio.timeout_at(asyncio.get_running_loop().time() + (deadline - now)):
                    return await inner(attempt)
            except TimeoutError:
                return Outcome(error=_expired(seconds, False))

        return timed


def _expired(seconds: float, by_event: bool) -> ErrorInfo:
    if by_event:
        return ErrorInfo.of(ErrorCode.TIMEOUT, "the event's deadline had passed", runtime="node")
    return ErrorInfo.of(ErrorCode.TIMEOUT, f"handler did not finish within {seconds:g}s", runtime="node")
