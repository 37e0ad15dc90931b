"""An owned set of background tasks, for objects whose lifetime is not one ``async with``.

Where a scope is one coroutine, ``asyncio.TaskGroup`` is used instead. :class:`TaskSet`
is the same contract for a connection or a pool that starts tasks from callbacks:
every task it starts is tracked until done; the first unexpected exception is logged
with its traceback and kept (:attr:`TaskSet.failure`) and ``on_failure`` is called,
so the owner can close; :meth:`TaskSet.aclose` cancels what is left and awaits it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["TaskSet", "first_of"]


class TaskSet:
    """Tasks owned by one object. Not thread-safe; use from its event loop."""

    def __init__(
        self, owner: str, logger: logging.Logger, on_failure: Callable[[BaseException], None] | None = None
    ) -> None:
        self._owner = owner
        self._logger = logger
        # a bound method is held weakly: the owner holds this set, and a strong reference
        # back would make a cycle that only a full garbage collection frees
        self._on_failure: Callable[[], Callable[[BaseException], None] | None] | None = None
        if inspect.ismethod(on_failure):
            self._on_failure = weakref.WeakMethod(on_failure)
        elif on_failure is not None:
            callback = on_failure
            self._on_failure = lambda: callback
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failure: BaseException | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by this set."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self._logger.error("%s: task %s failed", self._owner, task.get_name(), exc_info=exc)
        if self.failure is None:
            self.failure = exc
            callback = self._on_failure() if self._on_failure is not None else None
            if callback is not None:
                callback(exc)

    def cancel(self, *, keep: asyncio.Task[Any] | None = None) -> None:
        """Cancel every task (but ``keep``, typically the caller's own)."""
        for task in self._tasks:
            if task is not keep:
                task.cancel()

    async def stop(self, *tasks: asyncio.Task[Any] | None) -> None:
        """Cancel ``tasks`` (owned by this set) and wait until they have ended."""
        live = [t for t in tasks if t is not None]
        for task in live:
            task.cancel()
        if live:
            await asyncio.wait(live)

    async def aclose(self) -> None:
        """Cancel every task but the caller's own, and wait until they have ended."""
        current = asyncio.current_task()
        self.cancel(keep=current)
        pending = [t for t in self._tasks if t is not current]
        if pending:
            await asyncio.wait(pending)


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until one of ``waits`` completes; cancel the others."""
    futures = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
