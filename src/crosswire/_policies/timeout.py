"""The timeout policy: bound each attempt by a deadline.

The attempt's deadline is the earlier of ``now + seconds`` and the event's own
``deadline`` (unix ms, set by the producer). It is written into ``Attempt.deadline``
so adapters can pass it on (a worker process gets it in ``DELIVER``), and enforced
here too, so a handler that ignores it is still bounded.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any

import msgspec

from .._errorinfo import ErrorCode, ErrorInfo
from .._exceptions import ConfigurationError
from .._types import Attempt, Handler, Outcome

__all__ = ["Timeout"]


if sys.version_info >= (3, 12):
    _current_task = asyncio.current_task
else:  # 3.11's current_task is Python code; the map it reads is the C one
    _current_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]

    _current_task = _current_tasks.get  # (loop) -> its running task: no Python frame


class _Watch:
    """The running attempts of one timeout layer on one event loop, and one loop timer
    for the earliest of their deadlines.

    Starting and ending an attempt is a dict write and a pop: no timer per attempt.
    When the timer fires it cancels the attempts that are due and sets itself for the
    next deadline. At most ``concurrency`` attempts run at once, so a scan is short, and
    it runs about once per ``seconds`` while handlers finish in time.
    """

    __slots__ = ("due", "fired", "loop", "monotonic", "running", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # asyncio's own loops keep time.monotonic(); another (uvloop) may keep its own clock
        self.monotonic = type(loop).time is asyncio.BaseEventLoop.time
        self.running: dict[asyncio.Task[Any], float] = {}
        self.fired: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.due = math.inf

    def start(self, task: asyncio.Task[Any], when: float) -> None:
        self.running[task] = when
        if when < self.due:
            if self.timer is not None:
                self.timer.cancel()
            self.due = when
            self.timer = self.loop.call_at(when, self._scan)

    def _scan(self) -> None:
        self.timer = None
        self.due = math.inf
        now = self.loop.time()
        running = self.running
        due = [task for task, when in running.items() if when <= now]
        for task in due:
            del running[task]
            self.fired.add(task)
            task.cancel()
        if running:
            self.due = min(running.values())
            self.timer = self.loop.call_at(self.due, self._scan)


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
        watches: list[_Watch] = []  # this binding's watch on the loop it runs on

        async def timed(attempt: Attempt) -> Outcome:
            now = time.monotonic()
            deadline = now + seconds
            event_deadline = attempt.event.deadline
            if event_deadline is not None:
                deadline = min(deadline, now + (event_deadline / 1000.0 - time.time()))
                if deadline <= now:
                    attempt.deadline = deadline
                    return Outcome(error=_expired(seconds, True))
            attempt.deadline = deadline
            loop = asyncio.get_running_loop()
            if not watches or watches[0].loop is not loop:
                watches[:] = [_Watch(loop)]
            watch = watches[0]
            task = _current_task(loop)
            assert task is not None
            # the watch keeps loop time, which may differ from time.monotonic (uvloop)
            watch.start(task, deadline if watch.monotonic else deadline - now + loop.time())
            try:
                outcome = await inner(attempt)
            except asyncio.CancelledError:
                if task in watch.fired:
                    watch.fired.discard(task)
                    if task.uncancel() == 0:
                        return Outcome(error=_expired(seconds, False))
                raise
            finally:
                watch.running.pop(task, None)
            if watch.fired and task in watch.fired:  # the handler swallowed our cancellation and finished anyway
                watch.fired.discard(task)
                task.uncancel()
            return outcome

        return timed


def _expired(seconds: float, by_event: bool) -> ErrorInfo:
    if by_event:
        return ErrorInfo.of(ErrorCode.TIMEOUT, "the event's deadline had passed", runtime="node")
    return ErrorInfo.of(ErrorCode.TIMEOUT, f"handler did not finish within {seconds:g}s", runtime="node")
