"""Bounded helpers for testing transports: every wait has a timeout and a clear message."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .._envelope import Event
from .._transports.base import Delivery, Subscription

__all__ = ["Collector", "Namespace", "assert_no_more", "collect", "describe", "eventually", "next_delivery"]


class Namespace:
    """A unique prefix for event types and group names, so tests sharing one broker
    (or running concurrently on one transport) never see each other's events."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"cwt{os.urandom(5).hex()}"

    def type(self, *tokens: str) -> str:
        """An event type under this namespace: ``<prefix>.<tokens...>``."""
        return ".".join((self.prefix, *tokens))

    def group(self, name: str = "g") -> str:
        """A consumer group name under this namespace (no dots, so any broker accepts it)."""
        return f"{self.prefix}_{name}"

    def __repr__(self) -> str:
        return f"Namespace({self.prefix!r})"


def describe(delivery: Delivery) -> str:
    """``<type id=.. key=.. attempt=..>``, for assertion messages."""
    event = delivery.event
    if event is None:
        return f"<undecodable delivery: {delivery.decode_error}>"
    return f"<{event.type} id={event.id} key={event.partitionkey} attempt={delivery.attempt}>"


def _iterator(subscription: Subscription) -> AsyncIterator[Delivery]:
    return subscription.__aiter__()


async def next_delivery(subscription: Subscription, timeout: float, what: str = "a delivery") -> Delivery:
    """The next delivery of ``subscription``.

    :raises AssertionError: none arrived within ``timeout`` seconds, or the
        subscription ended.
    """
    iterator = _iterator(subscription)
    try:
        async with asyncio.timeout(timeout):
            return await anext(iterator)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout}s") from None
    except StopAsyncIteration:
        raise AssertionError(f"subscription ended while waiting for {what}") from None


async def collect(subscription: Subscription, n: int, timeout: float = 10.0, *, ack: bool = False) -> list[Delivery]:
    """Receive exactly ``n`` deliveries (acking each if ``ack``).

    :raises AssertionError: fewer than ``n`` arrived within ``timeout`` seconds.
    """
    got: list[Delivery] = []
    iterator = _iterator(subscription)
    try:
        async with asyncio.timeout(timeout):
            while len(got) < n:
                delivery = await anext(iterator)
                got.append(delivery)
                if ack:
                    await delivery.ack()
    except TimeoutError:
        raise AssertionError(f"received {len(got)} of {n} deliveries within {timeout}s") from None
    except StopAsyncIteration:
        raise AssertionError(f"subscription ended after {len(got)} of {n} deliveries") from None
    return got


async def assert_no_more(subscription: Subscription, within: float, why: str = "") -> None:
    """Fail if ``subscription`` yields anything within ``within`` seconds."""
    iterator = _iterator(subscription)
    try:
        async with asyncio.timeout(within):
            delivery = await anext(iterator)
    except (TimeoutError, StopAsyncIteration):
        return
    reason = f" ({why})" if why else ""
    raise AssertionError(f"unexpected delivery {describe(delivery)}{reason}")


async def eventually(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = 20.0,
    *,
    interval: float = 0.01,
) -> None:
    """Wait until ``predicate()`` is true, checking every ``interval`` seconds.

    ``predicate`` may be a plain function or a coroutine function; an exception it
    raises propagates at once. ``timeout`` bounds the whole wait, including a
    predicate call that does not return.

    :raises AssertionError: still false after ``timeout`` seconds; the message names
        ``what``, the time waited and how many checks were made.
    """
    checks = 0
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            while True:
                checks += 1
                result = predicate()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        waited = time.monotonic() - started
        raise AssertionError(
            f"not within {timeout}s: {what} (still false after {checks} checks in {waited:.1f}s)"
        ) from None


OnDelivery = Callable[[Delivery], Awaitable[None]]


async def _ack(delivery: Delivery) -> None:
    await delivery.ack()


class Collector:
    """Consume a subscription in a background task, recording every delivery.

    ``on_delivery`` settles each one (default: ack). An exception in it stops the
    collector and is raised from :meth:`wait_for` / :meth:`stop`.
    """

    def __init__(self, subscription: Subscription, on_delivery: OnDelivery | None = None) -> None:
        self.subscription = subscription
        self.deliveries: list[Delivery] = []
        self._on_delivery = on_delivery or _ack
        self._changed = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        try:
            async for delivery in self.subscription:
                self.deliveries.append(delivery)
                self._changed.set()
                await self._on_delivery(delivery)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc
        finally:
            self._changed.set()

    def events(self) -> list[Event[Any]]:
        """The events received so far (decodable ones)."""
        return [d.event for d in self.deliveries if d.event is not None]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds.

        :raises AssertionError: it did not within ``timeout`` seconds (names ``what``).
        """
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    if self._error is not None:
                        raise AssertionError(f"collector failed: {self._error!r}") from self._error
                    if self._task is not None and self._task.done():
                        raise AssertionError(
                            f"subscription ended after {len(self.deliveries)} deliveries while waiting for {what}"
                        )
                    self._changed.clear()
                    # the predicate may depend on other collectors too: look again soon
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.02):
                            await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} ({len(self.deliveries)} deliveries so far)"
            ) from None

    async def wait_count(self, n: int, timeout: float) -> None:
        """Wait until at least ``n`` deliveries were received."""
        await self.wait_for(lambda: len(self.deliveries) >= n, timeout, f"{n} deliveries")

    async def stop(self) -> None:
        """Stop consuming and close the subscription; re-raises a settlement error."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.subscription.close()
        if self._error is not None:
            raise AssertionError(f"collector failed: {self._error!r}") from self._error
