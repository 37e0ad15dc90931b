"""Waiting for credit (spec/protocol.md, "Flow control").

Callers of :meth:`~crosswire._workers.pool.WorkerPool.handle` that find the worker
without spare credit — or down, between restarts — queue here, first come, first
served. A result that returns credit wakes one waiter per credit it frees; a waiter
woken for a credit it will not use (it was cancelled) passes the wake-up on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

from .session import Session

__all__ = ["CreditQueue"]


def usable(session: Session | None) -> bool:
    """Whether ``session`` is ready and has a credit to spare."""
    return session is not None and session.ready.is_set() and session.credit > 0


class CreditQueue:
    """The callers waiting for credit on one pool. Not thread-safe."""

    def __init__(self, current: Callable[[], Session | None], stopping: Callable[[], bool]) -> None:
        self._current = current
        self._stopping = stopping
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def ready_now(self) -> Session | None:
        """The current session if it may take a delivery without queueing."""
        session = self._current()
        return session if not self._waiters and usable(session) else None

    async def acquire(self) -> Session | None:
        """A ready session with credit, or None once the pool is stopping."""
        while True:
            if self._stopping():
                return None
            session = self.ready_now()
            if session is not None:
                return session
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # woken for a credit we will not use: pass it on
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                    self.wake()
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if self._stopping():
                return None
            session = self._current()
            if usable(session):
                return session

    def wake(self) -> None:
        """Wake as many waiters as the current session has unclaimed credit (usually one)."""
        session = self._current()
        if session is None or not self._waiters:
            return
        spare = session.credit
        woken = 0
        for waiter in self._waiters:
            if woken >= spare:
                break
            if not waiter.done():
                waiter.set_result(None)
                woken += 1

    def wake_all(self) -> None:
        """Wake everyone (the pool is stopping: they return without a session)."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
