"""The retry policy: decides, from an attempt's error alone, whether and when to retry.

A policy is one attribute and one method (tower's retry ``Policy``): ``max_attempts``
and ``next_delay(attempt, error) -> seconds | None`` (``None``: give up and
dead-letter). Any object of that shape is accepted by ``App.handler(retry=...)``.
:class:`Retry` is exponential backoff with jitter that never retries a non-retryable
error and never waits less than the error's ``retry_after``.

The retry layer does not loop: it writes the decision into ``Outcome.retry_delay`` and
settlement hands the delivery back to the transport for that long, so a retry waits
without holding a handler slot and survives a restart of the node.
"""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

import msgspec

from .._errorinfo import ErrorInfo
from .._exceptions import ConfigurationError
from .._types import Attempt, Handler, Outcome

__all__ = ["Retry", "RetryPolicy", "decided", "retrying"]


@runtime_checkable
class RetryPolicy(Protocol):
    """How many handler runs an event gets, and how long to wait between them."""

    @property
    def max_attempts(self) -> int:
        """Handler runs at most, the first one included."""
        ...

    def next_delay(self, attempt: int, error: ErrorInfo) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        ...


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff: ``initial * multiplier**(attempt-1)``, capped at ``max_delay``,
    then jittered by ±``jitter`` (a fraction). ``max_attempts`` counts the first attempt.
    """

    max_attempts: int = 3
    initial: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"Retry.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigurationError("Retry needs initial >= 0, max_delay >= 0, multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"Retry.jitter must be in [0, 1], got {self.jitter}")

    def backoff(self, attempt: int) -> float:
        """The un-jittered delay after failed attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.initial * self.multiplier ** max(0, attempt - 1))

    def next_delay(self, attempt: int, error: ErrorInfo) -> float | None:
        if not error.retryable or attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt)
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def layer(self, inner: Handler) -> Handler:
        return retrying(self, inner)


def retrying(policy: RetryPolicy, inner: Handler) -> Handler:
    """The retry layer for any :class:`RetryPolicy`: decides on a failed outcome."""

    async def decide(attempt: Attempt) -> Outcome:
        return decided(policy, attempt.number, await inner(attempt))

    return decide


def decided(policy: RetryPolicy, number: int, outcome: Outcome) -> Outcome:
    """``outcome`` with the policy's decision for a failed attempt ``number`` in
    ``retry_delay`` (also for failures found after the chain, e.g. emitted events the
    transport refused)."""
    error = outcome.error
    if error is None:
        return outcome
    delay = policy.next_delay(number, error)
    if delay is not None and delay < 0:
        delay = 0.0
    return msgspec.structs.replace(outcome, retry_delay=delay)


NO_RETRY = Retry(max_attempts=1)
