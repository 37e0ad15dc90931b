"""The router: a pure lookup from an event type to the bindings that handle it.

No I/O, no state beyond a cache. Several bindings may match one type (fan-out):
each gets its own delivery and settles it on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from ._subjects import subject_matches, validate_type

__all__ = ["Router"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def pattern(self) -> str: ...


B = TypeVar("B", bound=_Named)


class Router(Generic[B]):
    """Match event types against binding patterns (``order.created``, ``order.*``, ``order.>``)."""

    def __init__(self, bindings: Sequence[B] = ()) -> None:
        self._bindings: list[B] = []
        self._cache: dict[str, tuple[B, ...]] = {}
        for binding in bindings:
            self.add(binding)

    def add(self, binding: B) -> None:
        if any(b.name == binding.name for b in self._bindings):
            raise ValueError(f"a binding named {binding.name!r} already exists")
        self._bindings.append(binding)
        self._cache.clear()

    @property
    def bindings(self) -> tuple[B, ...]:
        return tuple(self._bindings)

    def route(self, event_type: str) -> tuple[B, ...]:
        """The bindings for ``event_type``, in registration order.

        :raises ValueError: if ``event_type`` is not a valid concrete type.
        """
        found = self._cache.get(event_type)
        if found is None:
            validate_type(event_type)
            found = tuple(b for b in self._bindings if subject_matches(b.pattern, event_type))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[event_type] = found
        return found
