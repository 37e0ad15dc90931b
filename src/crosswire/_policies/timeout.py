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

from .._errorinfo import ErrorCode, ErrorInfo
from .._exceptions import ConfigurationError
from .._types import Attempt, Handler, Outcome

__all__ = ["Timeout"]


class _Deadlines:
    """Coarse, shared timers: one event-loop timer per 5 ms slot, however many attempts
    are due in it. Adding and removing an attempt is a dict operation; a per-attempt
    ``asyncio.timeout`` would put one timer per event on the loop's heap.
    Deadlines therefore fire up to ``RESOLUTION`` late.
    """

    RESOLUTION = 0.005

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slots: dict[int, dict[int, _Expiry]] = {}
        self._next = 0

    def add(self, when: float, expiry: _Expiry) -> tuple[int, int]:
        slot = int(when / self.RESOLUTION) + 1
        waiting = self.slots.get(slot)
        if waiting is None:
            waiting = self.slots[slot] = {}
            self.loop.call_at(slot * self.RESOLUTION, self._fire, slot)
        self._next += 1
        waiting[self._next] = expiry
        return slot, self._next

    def remove(self, handle: tuple[int, int]) -> None:
        waiting = self.slots.get(handle[0])
        if waiting is not None:
            waiting.pop(handle[1], None)

    def _fire(self, slot: int) -> None:
        for expiry in self.slots.pop(slot, {}).values():
            expiry.fired = True
            expiry.task.cancel()


class _Expiry:
    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.fired = False


_deadlines: dict[asyncio.AbstractEventLoop, _Deadlines] = {}


def _deadlines_for(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    found = _deadlines.get(loop)
    if found is None:
        for stale in [other for other in _deadlines if other.is_closed()]:
            del _deadlines[stale]
        found = _deadlines[loop] = _Deadlines(loop)
    return found


class Timeout(msgspec.Struct, frozen=True):
    """Fail an attempt with ``timeout`` (retryable) after ``seconds``.

    A handler that ignores the deadline is cancelled (in-process) or abandoned (a worker's
    late result is ignored); the attempt ends at the deadline either way."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.seconds}")

    def layer(self, inner: Handler) -> Handler:
        seconds = self.seconds
        cached: list[_Deadlines] = []  # this binding's loop's timers, looked up once

        async def timed(attempt: Attempt) -> Outcome:
            now = time.monotonic()
            deadline = now + seconds
            event_deadline = attempt.event.deadline
            if event_deadline is not None:
                deadline = min(deadline, now + (event_deadline / 1000.0 - time.time()))
            attempt.deadline = deadline
            if deadline <= now:
                return Outcome(error=_expired(seconds, event_deadline is not None))
            if not cached or cached[0].loop.is_closed():
                cached[:] = [_deadlines_for(asyncio.get_running_loop())]
            deadlines = cached[0]
            task = asyncio.current_task()
            assert task is not None
            expiry = _Expiry(task)
            handle = deadlines.add(deadlines.loop.time() + (deadline - now), expiry)
            try:
                outcome = await inner(attempt)
            except asyncio.CancelledError:
                if expiry.fired and task.uncancel() == 0:
                    return Outcome(error=_expired(seconds, False))
                raise
            finally:
                deadlines.remove(handle)
            if expiry.fired:  # the handler swallowed our cancellation and finished anyway
                task.uncancel()
            return outcome

        return timed


def _expired(seconds: float, by_event: bool) -> ErrorInfo:
    if by_event:
        return ErrorInfo.of(ErrorCode.TIMEOUT, "the event's deadline had passed", runtime="node")
    return ErrorInfo.of(ErrorCode.TIMEOUT, f"handler did not finish within {seconds:g}s", runtime="node")
