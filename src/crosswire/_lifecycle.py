"""One lifecycle state machine, used by the node, each binding and each worker.

``registered → initializing → warming → ready → draining → stopped``, and ``failed``
from any state. Transitions outside that order raise, so a bug shows up at once.
"""

from __future__ import annotations

import enum

__all__ = ["Lifecycle", "State"]


class State(enum.StrEnum):
    REGISTERED = "registered"
    INITIALIZING = "initializing"
    WARMING = "warming"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


_NEXT: dict[State, frozenset[State]] = {
    State.REGISTERED: frozenset({State.INITIALIZING, State.STOPPED}),
    State.INITIALIZING: frozenset({State.WARMING, State.DRAINING}),
    State.WARMING: frozenset({State.READY, State.DRAINING}),
    State.READY: frozenset({State.DRAINING}),
    State.DRAINING: frozenset({State.STOPPED}),
    State.STOPPED: frozenset(),
    State.FAILED: frozenset({State.STOPPED}),
}


class Lifecycle:
    """The current state of one component; ``history`` lists every state entered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = State.REGISTERED
        self.history: list[State] = [State.REGISTERED]
        self.error: str | None = None

    def to(self, state: State) -> None:
        if state is State.FAILED:
            pass
        elif state not in _NEXT[self.state]:
            raise RuntimeError(f"{self.name}: cannot go from {self.state.value} to {state.value}")
        self.state = state
        self.history.append(state)

    def stop(self) -> None:
        """End in ``stopped`` by the legal path from wherever it is (through
        ``draining`` when it was starting or running); idempotent."""
        if self.state is State.STOPPED:
            return
        if State.STOPPED not in _NEXT[self.state]:
            self.to(State.DRAINING)
        self.to(State.STOPPED)

    def fail(self, reason: str) -> None:
        self.error = reason
        self.to(State.FAILED)

    @property
    def ready(self) -> bool:
        return self.state is State.READY
