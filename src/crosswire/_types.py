"""The core abstractions, in one small module that rarely changes.

An *attempt* goes in, an *outcome* comes out::

    Handler    = async (Attempt) -> Outcome       # never raises; failures are Outcome.error
    Middleware = (Handler) -> Handler             # one shape for every policy

Adapters (a Python function in-process, a worker process over the protocol) are the
innermost ``Handler``; policies (trace, dedup, breaker, timeout) wrap it. The retry
policy and the settlement (ack / retry / dead-letter) happen after the chain returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ._envelope import Event
from ._errorinfo import ErrorInfo

__all__ = ["Attempt", "Handler", "Middleware", "Outcome"]


class Attempt(msgspec.Struct, kw_only=True):
    """One attempt to handle one event in one binding.

    ``deadline`` is absolute, in ``time.monotonic()`` seconds (``None``: no deadline);
    ``event.deadline`` carries the same instant as unix milliseconds across processes.
    """

    event: Event[Any]
    binding: str
    number: int = 1
    deadline: float | None = None


class Outcome(msgspec.Struct, kw_only=True, frozen=True):
    """What an attempt produced: success (``error is None``) or an error envelope.

    ``emitted`` are follow-up events to submit once this attempt is acknowledged;
    ``start_ns``/``duration_ns`` are the handler's own timings (unix ns), used for spans
    of work done in other processes.
    """

    error: ErrorInfo | None = None
    emitted: tuple[Event[Any], ...] = ()
    start_ns: int = 0
    duration_ns: int = 0
    skipped: bool = False  # True when dedup acked without running the handler

    @property
    def ok(self) -> bool:
        return self.error is None


OK = Outcome()

Handler = Callable[[Attempt], Awaitable[Outcome]]
Middleware = Callable[[Handler], Handler]
