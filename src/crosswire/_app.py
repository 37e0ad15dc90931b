"""The application: what handlers and workers exist, and their policies.

An :class:`App` is pure configuration (STYLE: configuration apart from the running
wrapper). :class:`~crosswire.Node` builds the running bindings from it.

Policy order, the same for every binding, outermost first::

    trace ► dedup ► breaker ► timeout ► handler (Python function | worker process)

then the retry policy decides on the outcome, and the node settles the delivery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from ._policies.breaker import Breaker
from ._exceptions import ConfigurationError
from ._function import HandlerFunction, payload_type
from ._policies.retry import Retry
from ._subjects import validate_pattern

__all__ = ["App", "HandlerConfig", "Policies", "WorkerConfig"]

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], Awaitable[None]]


class Policies(msgspec.Struct, frozen=True, kw_only=True):
    """The policies of one binding. Validated when built; immutable afterwards."""

    timeout: float | None = 30.0
    retry: Retry = Retry()
    breaker: Breaker | None = Breaker()
    dedup: bool = True
    concurrency: int = 16
    queue_size: int = 1024

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds or None, got {self.timeout}")
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.queue_size < 1:
            raise ConfigurationError(f"queue_size must be >= 1, got {self.queue_size}")


class HandlerConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    pattern: str
    fn: HandlerFunction
    policies: Policies


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    command: tuple[str, ...] | None
    env: Mapping[str, str]
    cwd: str | None
    policies: Policies
    options: Mapping[str, Any]


class App:
    """Handlers, workers and lifecycle hooks, registered before the node starts."""

    def __init__(self, name: str, *, source: str | None = None) -> None:
        if not name:
            raise ConfigurationError("an App needs a name")
        self.name = name
        self.source = source or f"/{name}"
        self.handlers: list[HandlerConfig] = []
        self.workers: list[WorkerConfig] = []
        self.init_hooks: list[Hook] = []
        self.warmup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self._frozen = False

    def _check_open(self) -> None:
        if self._frozen:
            raise ConfigurationError(f"app {self.name!r} is running; register everything before start")

    def handler(
        self,
        type: str,
        *,
        name: str | None = None,
        timeout: float | None = 30.0,
        retry: Retry | None = None,
        breaker: Breaker | bool | None = True,
        dedup: bool = True,
        concurrency: int = 16,
        queue_size: int = 1024,
    ) -> Callable[[F], F]:
        """Register an async or sync function for events whose type matches ``type``
        (wildcards ``*`` and ``>`` allowed). ``concurrency`` bounds parallel calls;
        events with the same key are always handled one at a time, in order.
        """
        self._check_open()
        try:
            validate_pattern(type)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        policies = _policies(timeout, retry, breaker, dedup, concurrency, queue_size)

        def register(fn: F) -> F:
            payload_type(fn)  # fail now on a bad signature, not on the first event
            binding = name or str(getattr(fn, "__name__", "handler"))
            if any(h.name == binding for h in self.handlers):
                binding = f"{binding}:{type}"
            if any(h.name == binding for h in self.handlers):
                raise ConfigurationError(f"handler name {binding!r} is already registered")
            self.handlers.append(HandlerConfig(name=binding, pattern=type, fn=fn, policies=policies))
            return fn

        return register

    def worker(
        self,
        name: str,
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = 30.0,
        retry: Retry | None = None,
        breaker: Breaker | bool | None = True,
        dedup: bool = True,
        concurrency: int = 64,
        queue_size: int = 1024,
        **options: Any,
    ) -> None:
        """Register a worker process. With ``command`` the node spawns and supervises it
        (socket path in ``CROSSWIRE_SOCKET``); without, it waits for a worker of that
        name to connect. Each event type in the worker's HELLO becomes a binding
        ``<name>:<type>`` with these policies. ``options`` go to the worker pool
        (e.g. ``heartbeat_interval``, ``ready_timeout``).
        """
        self._check_open()
        if any(w.name == name for w in self.workers):
            raise ConfigurationError(f"worker {name!r} is already registered")
        if command is not None and (isinstance(command, str) or not command):
            raise ConfigurationError("command must be a non-empty list of arguments, e.g. ['./bin/pricing']")
        policies = _policies(timeout, retry, breaker, dedup, concurrency, queue_size)
        self.workers.append(
            WorkerConfig(
                name=name,
                command=tuple(command) if command else None,
                env=dict(env or {}),
                cwd=cwd,
                policies=policies,
                options=dict(options),
            )
        )

    def on_init(self, fn: Hook) -> Hook:
        """Run ``fn`` while the node initializes (wire dependencies, open pools)."""
        self._check_open()
        self.init_hooks.append(fn)
        return fn

    def on_warmup(self, fn: Hook) -> Hook:
        """Run ``fn`` after init, before the node is ready (prime caches)."""
        self._check_open()
        self.warmup_hooks.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        """Run ``fn`` after the node drained (close pools)."""
        self._check_open()
        self.shutdown_hooks.append(fn)
        return fn


def _policies(
    timeout: float | None,
    retry: Retry | None,
    breaker: Breaker | bool | None,
    dedup: bool,
    concurrency: int,
    queue_size: int,
) -> Policies:
    return Policies(
        timeout=timeout,
        retry=retry or Retry(),
        breaker=Breaker() if breaker is True else (breaker or None),
        dedup=dedup,
        concurrency=concurrency,
        queue_size=queue_size,
    )
