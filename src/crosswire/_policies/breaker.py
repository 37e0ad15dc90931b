"""The circuit breaker policy: stop calling a handler whose downstream is down.

Semantics (the same for every runtime, since the node applies them):

- **What counts.** A *failure* is a retryable error that says something about the
  handler's health: ``timeout``, ``unavailable``, ``resource_exhausted``,
  ``handler_error``, ``internal``. A success is an attempt without error. Everything
  else is *neutral* and not counted: non-retryable errors (bad input, rejection: the
  event's fault, not the handler's), ``worker_lost`` (one crashed worker process takes
  all its in-flight deliveries with it; the pool restarts it), ``cancelled``, and an
  error that names its own ``retry_after`` (``RetryLater(after=...)``: the handler paces
  that event itself and the retry policy honours it; it is no verdict on the binding).
- **When it opens.** From ``closed`` when, over the last ``window`` seconds, at least
  ``minimum_calls`` counted calls were made and at least ``failure_rate`` of them
  failed. A rate, not a run of consecutive failures: a burst of poison events and
  their retries among healthy traffic (a few failing events, each failing every
  attempt) does not open it; a downstream that fails every call does.
- **Where deliveries wait.** While ``open``, attempts wait *in the breaker*, before
  the handler runs, holding their delivery (its lease is kept alive): no attempt is
  spent, nothing is failed or lost, and a drain hands them back unrun.
- **How it closes.** ``reset_after`` seconds after opening it goes ``half_open`` and
  lets up to ``probes`` attempts through at a time. The first success closes it; once
  ``probes`` probe attempts have failed with no success it opens again.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque

import msgspec

from .._errorinfo import ErrorCode, ErrorInfo
from .._exceptions import ConfigurationError
from .._types import Attempt, Handler, Outcome

__all__ = ["Breaker", "BreakerState", "BreakerStatistics", "CircuitBreaker"]

_NEUTRAL = frozenset({ErrorCode.WORKER_LOST, ErrorCode.CANCELLED})
_SLOTS = 10  # the window is counted in this many time slots


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_CLOSED = BreakerState.CLOSED  # read once per call: on 3.11 an enum member is a metaclass lookup (~0.1 µs)


class BreakerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    state: BreakerState
    window_calls: int
    """Counted calls in the current window."""
    window_failures: int
    times_opened: int
    waiting: int
    """Attempts waiting for the breaker to let them through."""


class Breaker(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration; each binding builds its own :class:`CircuitBreaker` with :meth:`layer`."""

    failure_rate: float = 0.5
    minimum_calls: int = 20
    window: float = 10.0
    reset_after: float = 5.0
    probes: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1:
            raise ConfigurationError(f"Breaker.failure_rate must be in (0, 1], got {self.failure_rate}")
        if self.minimum_calls < 1 or self.probes < 1:
            raise ConfigurationError("Breaker needs minimum_calls >= 1 and probes >= 1")
        if not (self.window > 0 and self.reset_after > 0):
            raise ConfigurationError("Breaker needs window > 0 and reset_after > 0 seconds")

    def layer(self, inner: Handler) -> CircuitBreaker:
        return CircuitBreaker(self, inner)


def counts_as_failure(error: ErrorInfo | None) -> bool | None:
    """True: a failure; False: a success; None: neutral (not counted)."""
    if error is None:
        return False
    if not error.retryable or error.code in _NEUTRAL or error.retry_after is not None:
        return None
    return True


class CircuitBreaker:
    """The running breaker of one binding: a :data:`Handler`. Use from one event loop."""

    def __init__(self, config: Breaker, inner: Handler) -> None:
        self.config = config
        self._inner = inner
        self.state = BreakerState.CLOSED
        self.times_opened = 0
        self._slot_width = config.window / _SLOTS
        self._slots: deque[list[int]] = deque()  # [slot index, calls, failures], oldest first
        self._last: list[int] = [0, 0, 0]  # the newest slot (valid while now < _slot_end)
        self._slot_end = -math.inf
        self._calls = 0
        self._failures = 0
        self._probing = 0
        self._probe_failures = 0
        self._waiting = 0
        self._changed = asyncio.Event()

    async def __call__(self, attempt: Attempt) -> Outcome:
        probe = False
        if self.state is not _CLOSED:
            probe = await self._admit()
        try:
            outcome = await self._inner(attempt)
        except BaseException:
            if probe:
                self._probing -= 1
                self._wake()
            raise
        error = outcome.error
        verdict = False if error is None else counts_as_failure(error)
        if probe:
            self._probing -= 1
            self._probe_result(verdict)
        elif verdict is not None:
            self._count(verdict)
        return outcome

    async def _admit(self) -> bool:
        """Wait until a call may go through; True if it goes as a half-open probe."""
        self._waiting += 1
        try:
            while True:
                if self.state is BreakerState.CLOSED:
                    return False
                if self.state is BreakerState.HALF_OPEN and self._probing < self.config.probes:
                    self._probing += 1
                    return True
                changed = self._changed
                await changed.wait()
        finally:
            self._waiting -= 1

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _count(self, failed: bool) -> None:
        now = time.monotonic()
        if now >= self._slot_end:  # a new slot: forget the ones that left the window
            self._roll(now)
        last = self._last
        last[1] += 1
        self._calls += 1
        if failed:
            last[2] += 1
            self._failures += 1
            if (
                self.state is BreakerState.CLOSED
                and self._calls >= self.config.minimum_calls
                and self._failures >= self.config.failure_rate * self._calls
            ):
                self._open()

    def _roll(self, now: float) -> None:
        slot = int(now / self._slot_width)
        slots = self._slots
        while slots and slots[0][0] <= slot - _SLOTS:
            _, calls, failures = slots.popleft()
            self._calls -= calls
            self._failures -= failures
        if not slots or slots[-1][0] != slot:
            slots.append([slot, 0, 0])
        self._last = slots[-1]
        self._slot_end = (slot + 1) * self._slot_width

    def _probe_result(self, verdict: bool | None) -> None:
        if self.state is not BreakerState.HALF_OPEN:
            return
        if verdict is False:
            self.state = BreakerState.CLOSED
        elif verdict is True:
            self._probe_failures += 1
            if self._probe_failures >= self.config.probes:
                self._open()
                return
        self._wake()

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.times_opened += 1
        self._slots.clear()
        self._slot_end = -math.inf
        self._calls = self._failures = 0
        asyncio.get_running_loop().call_later(self.config.reset_after, self._half_open, self.times_opened)

    def _half_open(self, opening: int) -> None:
        if self.state is BreakerState.OPEN and self.times_opened == opening:
            self.state = BreakerState.HALF_OPEN
            self._probe_failures = 0
            self._wake()

    def statistics(self) -> BreakerStatistics:
        return BreakerStatistics(
            state=self.state,
            window_calls=self._calls,
            window_failures=self._failures,
            times_opened=self.times_opened,
            waiting=self._waiting,
        )
