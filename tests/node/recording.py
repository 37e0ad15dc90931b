"""A transport wrapper that records every settlement, for tests of the node."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import crosswire
from crosswire import Event, MemoryTransport
from crosswire.transports import Delivery, Features, Subscription


class RecordedDelivery(Delivery):
    def __init__(self, inner: Delivery, log: SettlementLog) -> None:
        self._inner = inner
        self._log = log

    @property
    def event(self) -> Event[Any] | None:
        return self._inner.event

    @property
    def raw(self) -> bytes:
        return self._inner.raw

    @property
    def decode_error(self) -> str | None:
        return self._inner.decode_error

    @property
    def attempt(self) -> int:
        return self._inner.attempt

    def _record(self, what: str) -> None:
        event = self._inner.event
        self._log.entries.append((what, event.id if event else "?", self._inner.attempt, time.monotonic()))

    async def ack(self) -> None:
        self._record("ack")
        await self._inner.ack()

    async def retry(self, after: float) -> None:
        self._record("retry")
        await self._inner.retry(after)

    async def terminate(self) -> None:
        self._record("terminate")
        await self._inner.terminate()

    async def in_progress(self) -> None:
        await self._inner.in_progress()


class SettlementLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, int, float]] = []

    def of(self, what: str) -> list[str]:
        return [e[1] for e in self.entries if e[0] == what]


class _Sub(Subscription):
    def __init__(self, inner: Any, log: SettlementLog) -> None:
        self._inner = inner
        self._log = log

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        async for d in self._inner:
            yield RecordedDelivery(d, self._log)

    async def close(self) -> None:
        await self._inner.close()


class RecordingTransport:
    """MemoryTransport, with every ack/retry/terminate logged in ``log``."""

    def __init__(self) -> None:
        self.inner = MemoryTransport()
        self.features: Features = self.inner.features
        self.log = SettlementLog()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, events: Sequence[Event[Any]]) -> None:
        await self.inner.publish(events)

    async def subscribe(self, pattern: str, group: str, *, prefetch: int = 256, ack_wait: float = 30.0) -> Any:
        return _Sub(await self.inner.subscribe(pattern, group, prefetch=prefetch, ack_wait=ack_wait), self.log)


__all__ = ["RecordingTransport", "crosswire"]
