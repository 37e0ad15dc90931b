"""What a worker is configured with (:class:`WorkerOptions`, :class:`WorkerSpec`) and
what a pool reports (:class:`WorkerStatistics`). Frozen, validated when built: a bad
value or an unknown option is a :class:`~crosswire.ConfigurationError` at registration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .._exceptions import ConfigurationError
from .frames import DEFAULT_MAX_FRAME, MIN_MAX_FRAME
from .schemas import produced_schemas

__all__ = ["WorkerOptions", "WorkerSpec", "WorkerState", "WorkerStatistics", "app_produces"]

WorkerState = Literal["registered", "initializing", "warming", "ready", "draining", "stopped", "failed"]


class WorkerOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the node runs and supervises one worker (``App.worker(..., **options)``).

    :param heartbeat_interval: seconds between heartbeats; 3 silent intervals = dead.
    :param ready_timeout: seconds from spawn (or from waiting, for an external worker)
        to ``ready``.
    :param restart_backoff_initial: first restart delay, doubled per failed restart.
    :param restart_backoff_max: the longest restart delay.
    :param max_frame: the largest frame the node accepts from this worker.
    :param hang_grace: seconds past a delivery's deadline (after the node already timed
        it out) that the worker may keep its credit; then the worker is declared hung
        and replaced (an external one is disconnected). A spawned worker whose credit is
        all held by timed-out deliveries is declared hung at once.
    :param token: the secret an external worker (``command=None``) must send in its
        ``hello`` (``CROSSWIRE_TOKEN``). A spawned worker always gets a fresh one.
    """

    heartbeat_interval: float = 1.0
    ready_timeout: float = 30.0
    restart_backoff_initial: float = 0.1
    restart_backoff_max: float = 5.0
    max_frame: int = DEFAULT_MAX_FRAME
    hang_grace: float = 5.0
    token: str | None = None

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or self.ready_timeout <= 0:
            raise ConfigurationError("heartbeat_interval and ready_timeout must be > 0")
        if not 0 < self.restart_backoff_initial <= self.restart_backoff_max:
            raise ConfigurationError("need 0 < restart_backoff_initial <= restart_backoff_max")
        if self.max_frame < MIN_MAX_FRAME:
            raise ConfigurationError(f"max_frame {self.max_frame} < minimum {MIN_MAX_FRAME}")
        if self.hang_grace <= 0:
            raise ConfigurationError("hang_grace must be > 0")
        if self.token is not None and not 16 <= len(self.token) <= 256:
            raise ConfigurationError("token must be 16-256 characters")

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> WorkerOptions:
        """Options from keyword arguments, with a clear error for a typo or a bad type.

        :raises ConfigurationError: an unknown option, a wrong type or a bad value.
        """
        known = cls.__struct_fields__
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigurationError(
                f"unknown worker option(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
            )
        try:
            return msgspec.convert(dict(options), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigurationError(f"invalid worker option: {exc}") from None


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How to run one worker. ``command=None``: an external worker connects by itself.

    :raises ConfigurationError: for an invalid field, when built.
    """

    name: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = {}
    cwd: str | None = None
    options: WorkerOptions = WorkerOptions()
    #: event type (or pattern) → ``dataschema`` URIs the app produces for it: a worker
    #: whose hello ``schemas`` cannot read them is warned about at the handshake
    produces: Mapping[str, tuple[str, ...]] = {}

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 256:
            raise ConfigurationError("worker name must be 1-256 characters")
        if self.command is not None:
            if isinstance(self.command, str) or not self.command:
                raise ConfigurationError(f"worker {self.name!r}: command must be a non-empty list of arguments")
            msgspec.structs.force_setattr(self, "command", tuple(self.command))
        if not isinstance(self.options, WorkerOptions):
            raise ConfigurationError(f"worker {self.name!r}: options must be WorkerOptions")

    def producing(self, produces: Mapping[str, tuple[str, ...]]) -> WorkerSpec:
        """This spec with :attr:`produces` set."""
        return msgspec.structs.replace(self, produces=produces)


def app_produces(app: Any, config: Any) -> dict[str, tuple[str, ...]]:
    """What an app produces for the types of its worker ``config``: the payload types of
    the worker's ``handles`` and of every ``emits`` in the app (handlers and workers)."""
    declared = [config.handles, *(h.emits for h in app.handlers), *(w.emits for w in app.workers)]
    return produced_schemas(declared)


class WorkerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one worker pool.

    ``hung``: times the worker was declared hung (credit kept past deadline +
    ``hang_grace``, or all of it held by timed-out deliveries); ``late``: results that
    arrived after the node had given up on the delivery (ignored); ``socket``: the
    node's worker socket path; ``refused``: attempts not delivered because the event's
    ``dataschema`` is not one the worker accepts.
    """

    name: str
    state: WorkerState
    pid: int | None
    types: tuple[str, ...]
    max_in_flight: int
    in_flight: int
    credit: int
    waiting: int
    restarts: int
    delivered: int
    results: int
    lost: int
    hung: int = 0
    late: int = 0
    socket: str | None = None
    refused: int = 0
