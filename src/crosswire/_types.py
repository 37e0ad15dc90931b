"""The core abstractions, in one small module that rarely changes.

An *attempt* goes in, an *outcome* comes out::

    Handler    = async (Attempt) -> Outcome       # never raises; failures are Outcome.error
    Middleware = (Handler) -> Handler             # one shape for every policy

    Layer      = an object with .layer(Handler) -> Handler   # a policy's config

Adapters (a Python function in-process, a worker process over the protocol) are the
innermost ``Handler``; policies and user middleware wrap it, in one order (see
:mod:`crosswire._policies`). The retry layer writes its decision into the outcome
(``retry_delay``); settlement (ack / retry / dead-letter) executes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import msgspec

from ._envelope import Event
from ._errorinfo import ErrorInfo
from ._observability.records import SpanRecord

__all__ = ["Attempt", "Handler", "Layer", "Middleware", "Outcome"]


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
    of work done in other processes. ``retry_delay`` is the retry policy's decision for a
    failed attempt: seconds until the next attempt, or ``None`` for no further attempt
    (dead-letter).
    """

    error: ErrorInfo | None = None
    emitted: tuple[Event[Any], ...] = ()
    start_ns: int = 0
    duration_ns: int = 0
    retry_delay: float | None = None
    spans: tuple[SpanRecord, ...] = ()
    """Spans a worker's handler code recorded, shipped in its ``RESULT`` (exported by the trace policy)."""

    @property
    def ok(self) -> bool:
        return self.error is None


OK = Outcome()

Handler = Callable[[Attempt], Awaitable[Outcome]]
"""Runs one attempt. Never raises for a failed attempt: the failure is ``Outcome.error``."""

Middleware = Callable[[Handler], Handler]
"""Wraps a handler: the shape of user middleware (``App.handler(..., middleware=[...])``)."""


@runtime_checkable
class Layer(Protocol):
    """A policy's frozen configuration, which builds its running wrapper (tower's Layer).
    Each binding calls ``layer`` once, so per-binding state (a breaker's window) is not shared."""

    def layer(self, inner: Handler) -> Handler: ...
