"""What this node submitted and has not yet settled: backpressure and ``wait_idle``.

An entry is one (event id, binding) pair: fan-out to three bindings is three entries,
each removed when its binding acknowledges or dead-letters the event. Retries keep
the entry. Sets, not counters: submitting the same id twice is one entry, as the
transport stores it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal

from ._exceptions import BackpressureError

__all__ = ["Pending"]

Pair = tuple[str, str]


class Pending:
    """Bounded by ``limit`` (``None``: unbounded). Use from one event loop."""

    def __init__(self, limit: int | None, *, on_full: Literal["block", "reject"], timeout: float) -> None:
        self.limit = limit
        self.on_full = on_full
        self.timeout = timeout
        self._pairs: set[Pair] = set()
        self._room = asyncio.Event()  # set whenever len < limit
        self._idle = asyncio.Event()  # set whenever empty
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pairs)

    def full(self, n: int) -> bool:
        """Whether ``n`` more entries would exceed the limit (an empty set always takes them)."""
        return self.limit is not None and bool(self._pairs) and len(self._pairs) + n > self.limit

    async def reserve(self, n: int) -> None:
        """Wait until ``n`` more entries fit (never when empty: one oversized batch passes).

        :raises BackpressureError: still full after ``timeout`` (or at once, ``on_full="reject"``).
        """
        limit = self.limit
        if limit is None or not self.full(n):
            return
        if self.on_full == "reject":
            raise BackpressureError(f"{len(self._pairs)} events pending (max_pending={limit}); rejected")
        try:
            async with asyncio.timeout(self.timeout):
                while self.full(n):
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            raise BackpressureError(
                f"node stayed full for {self.timeout:g}s ({len(self._pairs)} pending, max_pending={limit})"
            ) from None

    def add(self, pairs: Iterable[Pair]) -> None:
        before = len(self._pairs)
        self._pairs.update(pairs)
        if len(self._pairs) != before:
            self._idle.clear()

    def remove(self, pairs: Iterable[Pair]) -> None:
        for pair in pairs:
            self._pairs.discard(pair)
        self._changed()

    def discard(self, pair: Pair) -> None:
        self._pairs.discard(pair)
        self._changed()

    def _changed(self) -> None:
        if not self._pairs:
            self._idle.set()
        if self.limit is not None and len(self._pairs) < self.limit:
            self._room.set()

    async def wait_empty(self) -> None:
        await self._idle.wait()
