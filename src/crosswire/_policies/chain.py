"""One binding's policies, and the one order they wrap its handler in.

Every policy is a frozen, validated configuration with ``layer(inner) -> Handler``
(:class:`~crosswire._types.Layer`); user middleware has the same shape, or is a plain
``Handler -> Handler`` function. The order, outermost first, is the same for every
binding::

    trace ► retry ► dedup ► breaker ► timeout ► middleware… ► handler

- *trace* sees the whole attempt, with the retry decision;
- *retry* decides on whatever failed inside it (``Outcome.retry_delay``); settlement
  executes the decision;
- *dedup* marks a key done only after everything inside it succeeded;
- *breaker* counts the attempts that reached the handler, timeouts included;
- *timeout* bounds the user middleware and the handler together;
- user *middleware* runs closest to the handler, app-wide middleware outside the
  handler's own, each list in the order given (the first is outermost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import msgspec

from .._exceptions import ConfigurationError
from .._types import Handler, Layer, Middleware
from .breaker import Breaker
from .dedup import Dedup, IdempotencyStore
from .retry import Retry, RetryPolicy, retrying
from .timeout import Timeout
from .tracing import Tracing

__all__ = ["MiddlewareLike", "Policies", "build_chain", "check_middleware"]

MiddlewareLike: TypeAlias = Layer | Middleware
"""What ``middleware=`` accepts: an object with ``layer(inner)``, or ``Handler -> Handler``."""


class Policies(msgspec.Struct, frozen=True, kw_only=True):
    """The policies of one binding. Validated when built; immutable afterwards."""

    timeout: Timeout | None = Timeout(30.0)
    retry: RetryPolicy = Retry()
    breaker: Breaker | None = Breaker()
    dedup: Dedup | None = Dedup()
    middleware: tuple[MiddlewareLike, ...] = ()
    concurrency: int = 16
    queue_size: int = 1024

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.queue_size < 1:
            raise ConfigurationError(f"queue_size must be >= 1, got {self.queue_size}")
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigurationError(
                f"retry must be a RetryPolicy (max_attempts and next_delay), got {type(self.retry).__name__}"
            )
        if self.retry.max_attempts < 1:
            raise ConfigurationError(f"retry.max_attempts must be >= 1, got {self.retry.max_attempts}")
        for m in self.middleware:
            check_middleware(m)


def check_middleware(m: object) -> None:
    """:raises ConfigurationError: ``m`` is neither a :class:`Layer` nor callable."""
    if not (isinstance(m, Layer) or callable(m)) or isinstance(m, type):
        raise ConfigurationError(f"middleware must have layer(inner) or be a function Handler -> Handler, got {m!r}")


def _wrap(m: MiddlewareLike, inner: Handler) -> Handler:
    build: Callable[[Handler], Handler] = m.layer if isinstance(m, Layer) else m
    return build(inner)


def build_chain(
    handler: Handler,
    policies: Policies,
    *,
    store: IdempotencyStore | None,
    tracing: Tracing | None,
) -> tuple[Handler, list[Handler]]:
    """Wrap ``handler`` in ``policies`` in the documented order. Returns the chain and
    every wrapper built, innermost first (so a binding can read their statistics)."""
    built: list[Handler] = []
    chain = handler
    for m in reversed(policies.middleware):
        chain = _wrap(m, chain)
        built.append(chain)
    layers: list[Layer | None] = [policies.timeout, policies.breaker]
    dedup = policies.dedup
    if dedup is not None and (dedup.store or store) is not None:
        timeout = policies.timeout.seconds if policies.timeout is not None else 30.0
        layers.append(
            msgspec.structs.replace(dedup, store=dedup.store or store, lease=dedup.lease or max(60.0, 2 * timeout))
        )
    for layer in layers:
        if layer is not None:
            chain = layer.layer(chain)
            built.append(chain)
    chain = retrying(policies.retry, chain)
    if tracing is not None:
        chain = tracing.layer(chain)
    return chain, built
