"""The application: what handlers and workers exist, and their policies.

An :class:`App` is pure configuration (STYLE: configuration apart from the running
wrapper). :class:`~crosswire.Node` builds the running bindings from it.

Policy order, the same for every binding, outermost first (:mod:`crosswire._policies.chain`)::

    trace ► retry ► dedup ► breaker ► timeout ► middleware… ► handler (Python function | worker process)

the retry layer decides on the outcome, and settlement executes the decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

import msgspec

from ._exceptions import ConfigurationError
from ._function import HandlerFunction, payload_type
from ._policies.breaker import Breaker
from ._policies.chain import MiddlewareLike, Policies, check_middleware
from ._policies.dedup import Dedup
from ._policies.retry import Retry, RetryPolicy
from ._policies.timeout import Timeout
from ._subjects import validate_pattern, validate_type
from ._workers.spec import WorkerOptions

__all__ = ["App", "HandlerConfig", "Policies", "WorkerConfig", "WorkerOptionArgs"]

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], Awaitable[None]]


class WorkerOptionArgs(TypedDict, total=False):
    """The keyword options of :meth:`App.worker` (fields of :class:`WorkerOptions`)."""

    heartbeat_interval: float
    ready_timeout: float
    restart_backoff_initial: float
    restart_backoff_max: float
    max_frame: int
    hang_grace: float
    token: str | None


class HandlerConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    pattern: str
    fn: HandlerFunction
    policies: Policies
    emits: Mapping[str, Any] = {}  # event type -> payload type (or None): for the schema export


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    command: tuple[str, ...] | None
    env: Mapping[str, str]
    cwd: str | None
    policies: Policies
    options: WorkerOptions
    # declared for the schema export: event type -> payload type (or None), and the runtime
    handles: Mapping[str, Any] = {}
    emits: Mapping[str, Any] = {}
    runtime: str | None = None


class App:
    """Handlers, workers and lifecycle hooks, registered before the node starts.

    :param middleware: wraps every binding's handler, outside each handler's own
        ``middleware`` (see the policy order above).
    """

    def __init__(self, name: str, *, source: str | None = None, middleware: Sequence[MiddlewareLike] = ()) -> None:
        if not name:
            raise ConfigurationError("an App needs a name")
        self.name = name
        self.source = source or f"/{name}"
        for m in middleware:
            check_middleware(m)
        self.middleware: tuple[MiddlewareLike, ...] = tuple(middleware)
        self.handlers: list[HandlerConfig] = []
        self.workers: list[WorkerConfig] = []
        self.init_hooks: list[Hook] = []
        self.warmup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self._frozen = False

    def freeze(self) -> None:
        """Refuse further registration (the node calls this when it starts)."""
        self._frozen = True

    def _check_open(self) -> None:
        if self._frozen:
            raise ConfigurationError(f"app {self.name!r} is running; register everything before start")

    def handler(
        self,
        type: str,
        *,
        name: str | None = None,
        timeout: float | Timeout | None = 30.0,
        retry: RetryPolicy | None = None,
        breaker: Breaker | bool = True,
        dedup: Dedup | bool = True,
        middleware: Sequence[MiddlewareLike] = (),
        concurrency: int = 16,
        queue_size: int = 1024,
        emits: Sequence[str] | Mapping[str, Any] = (),
    ) -> Callable[[F], F]:
        """Register an async or sync function for events whose type matches ``type``
        (wildcards ``*`` and ``>`` allowed). ``concurrency`` bounds parallel calls;
        events with the same key are always handled one at a time, in order.
        ``retry`` takes any :class:`RetryPolicy`; ``middleware`` wraps the handler
        inside the timeout (the first is outermost). ``emits`` declares the event types
        the handler returns (a list, or a dict of event type to payload type), for
        ``crosswire schema export`` and ``crosswire codegen``.

        :raises ConfigurationError: a bad pattern, policy, middleware, signature or
            ``emits``, or the app is already running.
        """
        self._check_open()
        try:
            validate_pattern(type)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        declared_emits = _declared("emits", emits, patterns=False)
        policies = self._policies(timeout, retry, breaker, dedup, middleware, concurrency, queue_size)

        def register(fn: F) -> F:
            self._check_open()
            payload_type(fn)  # fail now on a bad signature, not on the first event
            binding = name or str(getattr(fn, "__name__", "handler"))
            if any(h.name == binding for h in self.handlers):
                binding = f"{binding}:{type}"
            if any(h.name == binding for h in self.handlers):
                raise ConfigurationError(f"handler name {binding!r} is already registered")
            self.handlers.append(
                HandlerConfig(name=binding, pattern=type, fn=fn, policies=policies, emits=declared_emits)
            )
            return fn

        return register

    def worker(
        self,
        name: str,
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | Timeout | None = 30.0,
        retry: RetryPolicy | None = None,
        breaker: Breaker | bool = True,
        dedup: Dedup | bool = True,
        middleware: Sequence[MiddlewareLike] = (),
        concurrency: int = 64,
        queue_size: int = 1024,
        handles: Sequence[str] | Mapping[str, Any] = (),
        emits: Sequence[str] | Mapping[str, Any] = (),
        runtime: str | None = None,
        **options: Unpack[WorkerOptionArgs],
    ) -> None:
        """Register a worker process. With ``command`` the node spawns and supervises it
        (socket path in ``CROSSWIRE_SOCKET``); without, it waits for a worker of that
        name to connect. Each event type in the worker's HELLO becomes a binding
        ``<name>:<type>`` with these policies. ``options`` are :class:`WorkerOptions`
        fields (``heartbeat_interval``, ``ready_timeout``, ``hang_grace``, ``token``, ...).
        ``handles``, ``emits`` (event types, or dicts of event type to payload type) and
        ``runtime`` (``go``, ``rust``, ``python``) declare the worker's contract for
        ``crosswire schema export`` and ``crosswire codegen``; the bindings still come
        from its HELLO.

        :raises ConfigurationError: an unknown or invalid option, a bad command, a
            duplicate name, bad ``handles``/``emits``/``runtime``, or the app is
            already running.
        """
        self._check_open()
        if not name:
            raise ConfigurationError("a worker needs a name")
        if any(w.name == name for w in self.workers):
            raise ConfigurationError(f"worker {name!r} is already registered")
        if command is not None and (isinstance(command, str) or not command):
            raise ConfigurationError("command must be a non-empty list of arguments, e.g. ['./bin/pricing']")
        worker_options = WorkerOptions.parse(options)
        declared_handles = _declared("handles", handles, patterns=True)
        declared_emits = _declared("emits", emits, patterns=False)
        if runtime is not None and (not isinstance(runtime, str) or not runtime):
            raise ConfigurationError(f"runtime must be a non-empty name such as 'go', got {runtime!r}")
        policies = self._policies(timeout, retry, breaker, dedup, middleware, concurrency, queue_size)
        self.workers.append(
            WorkerConfig(
                name=name,
                command=tuple(command) if command else None,
                env=dict(env or {}),
                cwd=cwd,
                policies=policies,
                options=worker_options,
                handles=declared_handles,
                emits=declared_emits,
                runtime=runtime,
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
        self,
        timeout: float | Timeout | None,
        retry: RetryPolicy | None,
        breaker: Breaker | bool,
        dedup: Dedup | bool,
        middleware: Sequence[MiddlewareLike],
        concurrency: int,
        queue_size: int,
    ) -> Policies:
        if isinstance(timeout, bool) or not (timeout is None or isinstance(timeout, (int, float, Timeout))):
            raise ConfigurationError(f"timeout must be seconds, a Timeout or None, got {timeout!r}")
        if not isinstance(breaker, (bool, Breaker)) and breaker is not None:
            raise ConfigurationError(f"breaker must be a Breaker, True or False, got {breaker!r}")
        if not isinstance(dedup, (bool, Dedup)):
            raise ConfigurationError(f"dedup must be a Dedup, True or False, got {dedup!r}")
        if isinstance(middleware, (str, bytes)) or not isinstance(middleware, Sequence):
            raise ConfigurationError(f"middleware must be a list, got {type(middleware).__name__}")
        return Policies(
            timeout=Timeout(float(timeout)) if isinstance(timeout, (int, float)) else timeout,
            retry=retry if retry is not None else Retry(),
            breaker=Breaker() if breaker is True else (breaker or None),
            dedup=Dedup() if dedup is True else (dedup or None),
            middleware=(*self.middleware, *middleware),
            concurrency=concurrency,
            queue_size=queue_size,
        )


def _declared(what: str, types: Sequence[str] | Mapping[str, Any], *, patterns: bool) -> dict[str, Any]:
    """``handles``/``emits``: event types, or a dict of event type to payload type (or None)."""
    if isinstance(types, (str, bytes)) or not isinstance(types, (Sequence, Mapping)):
        raise ConfigurationError(
            f"{what} must be a list of event types or a dict of event type to payload type, got {types!r}"
        )
    items = list(types.items()) if isinstance(types, Mapping) else [(t, None) for t in types]
    out: dict[str, Any] = {}
    for event_type, tp in items:
        try:
            (validate_pattern if patterns else validate_type)(event_type)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{what}: {exc}") from None
        if tp is not None:
            try:
                msgspec.json.schema(tp)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"{what}: {event_type!r}: payload type {tp!r} has no schema: {exc}") from None
        out[event_type] = tp
    return out
