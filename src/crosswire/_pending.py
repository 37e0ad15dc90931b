"""What this node submitted and has not yet settled: backpressure and ``wait_idle``.

An entry is one (event id, binding) pair: fan-out to three bindings is three entries,
each removed when its binding acknowledges or dead-letters the event. Retries keep
the entry. Sets, not counters: submitting the same id twice is one entry, as the
transport stores it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

from ._envelope import Event
from ._exceptions import BackpressureError, ConfigurationError

__all__ = ["Pending", "entries_of"]

Pair = tuple[str, str]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def entries_of(
    events: Sequence[Event[Any]], route: Callable[[str], Sequence[_Named]], *, lossless: bool
) -> tuple[list[Pair], list[int], int]:
    """The entries ``events`` make (one per event and binding ``route`` gives), the data
    size each holds, and the events' data size in all.

    :raises ConfigurationError: with ``lossless``, an event no binding takes (an
        in-process transport would drop it).
    """
    pairs: list[Pair] = []
    sizes: list[int] = []
    total = 0
    for event in events:
        bindings = route(event.type)
        if not bindings and lossless:
            raise ConfigurationError(
                f"no handler for event type {event.type!r}: on a non-durable transport it would be lost"
            )
        data = event.data
        size = 0 if data is None else len(data)
        for binding in bindings:
            pairs.append((event.id, binding.name))
            sizes.append(size)
        total += size
    return pairs, sizes, total


class Pending:
    """Bounded by ``limit`` entries and ``max_bytes`` of event data (``None``: unbounded).
    An event's size counts once per entry it has. Use from one event loop."""

    def __init__(
        self,
        limit: int | None,
        *,
        max_bytes: int | None = None,
        on_full: Literal["block", "reject"],
        timeout: float,
    ) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.on_full = on_full
        self.timeout = timeout
        self._pairs: dict[Pair, int] = {}
        self.bytes = 0
        self._room = asyncio.Event()  # cleared by a waiting reserve(), set when there is room
        self._room.set()
        self._idle = asyncio.Event()  # set whenever empty
        self._idle.set()

    @classmethod
    def configured(
        cls,
        limit: int | Literal["auto"] | None,
        max_bytes: int | Literal["auto"] | None,
        *,
        durable: bool,
        on_full: Literal["block", "reject"],
        timeout: float,
    ) -> Pending:
        """The node's bound from its arguments: ``"auto"`` is 10,000 events and 128 MiB on
        a non-durable transport, no bound on a durable one (the stream is the buffer).

        :raises ConfigurationError: a bound below 1.
        """
        if limit == -1 or limit == "auto":  # -1: the former spelling of "auto"
            limit = None if durable else 10_000
        if max_bytes == "auto":
            max_bytes = None if durable else 128 * 1024 * 1024
        if limit is not None and limit < 1:
            raise ConfigurationError("max_pending must be >= 1 or None")
        if max_bytes is not None and max_bytes < 1:
            raise ConfigurationError("max_pending_bytes must be >= 1 or None")
        return cls(limit, max_bytes=max_bytes, on_full=on_full, timeout=timeout)

    def __len__(self) -> int:
        return len(self._pairs)

    def full(self, n: int, size: int = 0) -> bool:
        """Whether ``n`` more entries of ``size`` bytes in all would exceed a limit (an
        empty set always takes them)."""
        if not self._pairs:
            return False
        if self.limit is not None and len(self._pairs) + n > self.limit:
            return True
        return self.max_bytes is not None and self.bytes + size > self.max_bytes

    def _describe(self) -> str:
        return (
            f"{len(self._pairs)} pending (max_pending={self.limit}), "
            f"{self.bytes} bytes (max_pending_bytes={self.max_bytes})"
        )

    async def reserve(self, n: int, size: int = 0) -> None:
        """Wait until ``n`` more entries of ``size`` bytes fit (never when empty: one
        oversized batch passes).

        :raises BackpressureError: still full after ``timeout`` (or at once, ``on_full="reject"``).
        """
        if not self.full(n, size):
            return
        if self.on_full == "reject":
            raise BackpressureError(f"node is full: {self._describe()}; rejected")
        try:
            async with asyncio.timeout(self.timeout):
                while self.full(n, size):
                    self._room.clear()  # set again by _changed once there is room
                    await self._room.wait()
        except TimeoutError:
            raise BackpressureError(f"node stayed full for {self.timeout:g}s: {self._describe()}") from None

    def add(self, pairs: Sequence[Pair], sizes: Sequence[int] | None = None) -> None:
        """Add entries; ``sizes[i]`` is the data size in bytes that ``pairs[i]`` holds."""
        entries = self._pairs
        before = len(entries)
        for i, pair in enumerate(pairs):
            if pair not in entries:
                size = sizes[i] if sizes else 0
                entries[pair] = size
                self.bytes += size
        if len(entries) != before:
            self._idle.clear()

    def remove(self, pairs: Iterable[Pair]) -> None:
        for pair in pairs:
            self.bytes -= self._pairs.pop(pair, 0)
        self._changed()

    def discard(self, event_id: str, binding: str) -> None:
        size = self._pairs.pop((event_id, binding), None)
        if size is not None:
            self.bytes -= size
            self._changed()

    def _changed(self) -> None:
        if not self._pairs:
            self._idle.set()
            self._room.set()
        elif not self._room.is_set() and not self.full(1):
            self._room.set()

    async def wait_empty(self) -> None:
        await self._idle.wait()
