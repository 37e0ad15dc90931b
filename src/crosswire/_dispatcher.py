"""The dispatcher: runs deliveries of one binding with bounded concurrency and
per-key order, on long-lived worker tasks (no task per event on the hot path).

Items with the same key run one at a time, in the order they were put; items with
different keys (or no key) run in parallel up to ``concurrency``. ``put`` blocks
while ``capacity`` items are queued — that is the backpressure towards the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import msgspec

__all__ = ["Dispatcher", "QueueStatistics"]

log = logging.getLogger("crosswire.node")

T = TypeVar("T")


class QueueStatistics(msgspec.Struct, frozen=True, kw_only=True):
    queued: int
    """Items queued or waiting behind their key, not yet running."""
    running: int
    processed: int
    concurrency: int
    capacity: int


class Dispatcher(Generic[T]):
    """Run ``process(item)`` for every item put, ``concurrency`` at a time.

    ``process`` must not raise (it owns its errors); if it does, the error is logged
    by the caller-supplied ``on_error`` and the worker task carries on.
    """

    def __init__(
        self,
        process: Callable[[T], Awaitable[None]],
        key: Callable[[T], str | None],
        *,
        concurrency: int,
        capacity: int,
        on_error: Callable[[T, BaseException], None],
        name: str = "dispatcher",
    ) -> None:
        if concurrency < 1 or capacity < 1:
            raise ValueError("concurrency and capacity must be >= 1")
        self._process = process
        self._key = key
        self._on_error = on_error
        self._capacity = capacity
        self._items: deque[T] = deque()  # queued, not yet taken by a worker task
        self._getters: deque[asyncio.Future[None]] = deque()  # idle worker tasks
        self._putters: deque[asyncio.Future[None]] = deque()  # put() waiting for room
        self._waiting: dict[str, deque[T]] = {}  # keys being processed -> their backlog
        self._concurrency = concurrency
        self._tasks: list[asyncio.Task[None]] = []
        self._name = name
        self.running = 0
        self.processed = 0
        self._outstanding = 0  # put and not yet processed or drained
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """Start the worker tasks; they are owned here and ended by :meth:`stop`."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"{self._name}-{i}") for i in range(self._concurrency)
            ]
            for task in self._tasks:
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: a dispatcher task died", self._name, exc_info=task.exception())

    def put_nowait(self, item: T) -> bool:
        """Queue ``item`` if there is room (``False``: full, nothing queued; use :meth:`put`)."""
        items = self._items
        if len(items) >= self._capacity:
            return False
        if self._outstanding == 0:
            self._idle.clear()
        self._outstanding += 1
        items.append(item)
        if self._getters:
            self._wake(self._getters)
        return True

    async def put(self, item: T) -> None:
        """Queue ``item``; waits while the queue is full."""
        if self._outstanding == 0:
            self._idle.clear()
        self._outstanding += 1
        items = self._items
        if len(items) >= self._capacity:
            try:
                while len(items) >= self._capacity:
                    room = asyncio.get_running_loop().create_future()
                    self._putters.append(room)
                    try:
                        await room
                    finally:
                        if not room.done() or room.cancelled():
                            _remove(self._putters, room)
            except BaseException:
                self._settle(1)
                self._wake(self._putters)  # pass on a wake-up this put may have taken
                raise
        items.append(item)
        if self._getters:
            self._wake(self._getters)

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _settle(self, n: int) -> None:
        self._outstanding -= n
        if self._outstanding <= 0:
            self._outstanding = 0
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until every item put has been processed (or removed by :meth:`drain_queued`)."""
        await self._idle.wait()

    @property
    def depth(self) -> int:
        """Items queued or waiting behind their key, not yet running."""
        return len(self._items) + sum(len(d) for d in self._waiting.values())

    def queued(self) -> list[T]:
        """The items not yet running: queued, or waiting behind their key."""
        return [*self._items, *(item for backlog in self._waiting.values() for item in backlog)]

    def drain_queued(self) -> list[T]:
        """Remove and return every item not yet running (used when a drain times out)."""
        items: list[T] = []
        items.extend(self._items)
        self._items.clear()
        while self._putters:
            self._wake(self._putters)
        for backlog in self._waiting.values():
            items.extend(backlog)
            backlog.clear()
        self._settle(len(items))
        return items

    async def stop(self) -> None:
        """Cancel the worker tasks (running items see CancelledError) and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _take(self) -> T:
        items = self._items
        while not items:
            idle = asyncio.get_running_loop().create_future()
            self._getters.append(idle)
            try:
                await idle
            except BaseException:
                _remove(self._getters, idle)
                if idle.done() and not idle.cancelled() and items:
                    self._wake(self._getters)  # the wake-up was for an item: pass it on
                raise
        return items.popleft()

    async def _work(self) -> None:
        items = self._items
        process = self._process
        waiting = self._waiting
        while True:
            item = items.popleft() if items else await self._take()
            if self._putters:
                self._wake(self._putters)
            key = self._key(item)
            backlog: deque[T] | None = None
            if key is not None:
                if key in waiting:  # another task runs this key: queue behind it
                    waiting[key].append(item)
                    continue
                backlog = waiting[key] = deque()
            try:
                while True:  # the item, then (keyed) what queued behind it meanwhile
                    self.running += 1
                    try:
                        await process(item)
                    except asyncio.CancelledError:
                        raise
                    except BaseException as exc:
                        self._on_error(item, exc)
                    finally:
                        self.running -= 1
                        self.processed += 1
                        self._settle(1)
                    if not backlog:
                        break
                    item = backlog.popleft()
            finally:
                if key is not None:
                    del waiting[key]

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            queued=self.depth,
            running=self.running,
            processed=self.processed,
            concurrency=self._concurrency,
            capacity=self._capacity,
        )


def _remove(waiters: deque[asyncio.Future[None]], waiter: asyncio.Future[None]) -> None:
    with contextlib.suppress(ValueError):
        waiters.remove(waiter)
