"""Every background task has an owner.

A :class:`TaskOwner` starts tasks, keeps them, and ends them: the first task that
fails (raises anything but ``CancelledError``) is logged once, kept as
``first_error`` and reported to ``on_failure`` — never swallowed. ``aclose`` cancels
what is left and waits for it. (An ``asyncio.TaskGroup`` needs one ``async with``
around the owner's whole life; a node starts and stops in separate calls.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["TaskOwner"]

log = logging.getLogger("crosswire.node")
T = TypeVar("T")


class TaskOwner:
    def __init__(self, name: str, on_failure: Callable[[str, BaseException], None] | None = None) -> None:
        self.name = name
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        self.first_error: BaseException | None = None

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
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
        log.error("%s: task %s failed: %s: %s", self.name, task.get_name(), type(exc).__name__, exc, exc_info=exc)
        if self.first_error is None:
            self.first_error = exc
        if self._on_failure is not None:
            self._on_failure(task.get_name(), exc)

    async def cancel(self, *tasks: asyncio.Task[Any] | None) -> None:
        """Cancel ``tasks`` and wait until they ended."""
        live = [t for t in tasks if t is not None]
        for task in live:
            task.cancel()
        await asyncio.gather(*live, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel every task still running and wait for them."""
        await self.cancel(*self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)
