"""The circuit breaker policy: stop calling a failing handler for a while.

States: ``closed`` (calls flow; consecutive failures are counted) → ``open`` after
``failure_threshold`` consecutive failures (calls *wait*, nothing is failed or lost)
→ ``half_open`` after ``reset_after`` seconds (one probe call at a time) → ``closed``
on a probe success, ``open`` again on a probe failure.

Only errors that say something about the handler's health count as failures:
retryable errors (timeout, unavailable, handler_error, ...). A non-retryable error
(bad input, rejection) is the event's fault, not the handler's, and counts as success
for the breaker.
"""

from __future__ import annotations

import asyncio
import enum
import time

import msgspec

from .._exceptions import ConfigurationError
from .._types import Attempt, Handler, Outcome

__all__ = ["Breaker", "BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration; each binding builds its own :class:`CircuitBreaker` from it."""

    failure_threshold: int = 5
    reset_after: float = 5.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.reset_after <= 0:
            raise ConfigurationError("Breaker needs failure_threshold >= 1 and reset_after > 0")

    def build(self) -> CircuitBreaker:
        return CircuitBreaker(self)


class CircuitBreaker:
    """The running breaker of one binding. Use from one event loop."""

    def __init__(self, config: Breaker) -> None:
        self.config = config
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.times_opened = 0
        self._probing = False
        self._changed = asyncio.Event()

    def __call__(self, inner: Handler) -> Handler:
        async def guarded(attempt: Attempt) -> Outcome:
            probe = await self._admit()
            try:
                outcome = await inner(attempt)
            except BaseException:
                self._record(False, probe)
                raise
            error = outcome.error
            self._record(error is None or not error.retryable, probe)
            return outcome

        return guarded

    async def _admit(self) -> bool:
        """Wait until a call may go through; True if it is the half-open probe."""
        while True:
            if self.state is BreakerState.CLOSED:
                return False
            if self.state is BreakerState.OPEN:
                remaining = self.opened_at + self.config.reset_after - time.monotonic()
                if remaining > 0:
                    await self._wait(remaining)
                    continue
                self.state = BreakerState.HALF_OPEN
            if not self._probing:
                self._probing = True
                return True
            await self._wait(self.config.reset_after)

    async def _wait(self, seconds: float) -> None:
        self._changed.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            pass

    def _record(self, success: bool, probe: bool) -> None:
        if probe:
            self._probing = False
        if success:
            self.failures = 0
            if self.state is not BreakerState.CLOSED:
                self.state = BreakerState.CLOSED
                self._changed.set()
            return
        self.failures += 1
        tripped = self.state is BreakerState.CLOSED and self.failures >= self.config.failure_threshold
        if probe or tripped:
            self.state = BreakerState.OPEN
            self.opened_at = time.monotonic()
            self.times_opened += 1
            self._changed.set()

    def statistics(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "consecutive_failures": self.failures,
            "times_opened": self.times_opened,
        }
