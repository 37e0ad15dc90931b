"""What one conformance case is given, and what it declares it needs.

A leaf of the suite: the case modules and the runner import it, it imports neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._transports.base import Delivery, Features, Transport
from ._helpers import Namespace

__all__ = ["Case", "CaseContext", "OpenTransport", "event_id", "event_seq"]

OpenTransport = Callable[[], Awaitable[Transport]]
"""Opens (and starts) another transport on the same store as the ``transport`` fixture:
for a durable transport, a new connection to the same broker, stream and prefix."""

_FEATURES = frozenset(Features.__struct_fields__)


@dataclass(frozen=True, kw_only=True)
class CaseContext:
    """Everything a case may use. ``ns`` is the case's own namespace: it must create
    every event type and group name under it, so cases can share one transport."""

    transport: Transport
    ns: Namespace
    features: Features
    timeout: float
    """Bounds every wait, in seconds."""
    quiet: float
    """How long "nothing more arrives" is watched, in seconds."""
    ack_wait: float
    """Passed to subscriptions whose unsettled deliveries must come back."""
    open_transport: OpenTransport | None = None

    async def reopen(self) -> Transport:
        """Another started transport on the same store (the caller closes it).

        :raises AssertionError: the test class provides no ``open_transport`` fixture.
        """
        if self.open_transport is None:
            raise AssertionError("this case needs the test class to provide an `open_transport` fixture")
        return await self.open_transport()


@dataclass(frozen=True, kw_only=True)
class Case:
    """One row of the suite's table.

    ``needs`` names :class:`Features` flags that must be true for the case to apply
    (otherwise it is skipped, and left out of the stress runs). ``reopens``: the case
    opens further transports on the same store (``CaseContext.reopen``). ``closes``:
    the case closes the transport it is given, so it never runs in the stress rounds.
    """

    name: str
    run: Callable[[CaseContext], Awaitable[None]]
    needs: tuple[str, ...] = ()
    reopens: bool = False
    closes: bool = False

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in _FEATURES]
        if unknown:
            raise ValueError(f"case {self.name}: unknown features {unknown}; known: {sorted(_FEATURES)}")

    @property
    def doc(self) -> str:
        """The first line of the case's docstring: what it checks."""
        return (self.run.__doc__ or "").strip().split("\n")[0]

    def missing(self, features: Features) -> list[str]:
        """The needed features ``features`` does not declare."""
        return [n for n in self.needs if not getattr(features, n)]


def event_id(delivery: Delivery) -> str:
    """The id of a delivery's event (it must have decoded)."""
    event = delivery.event
    assert event is not None, f"delivery did not decode: {delivery.decode_error}"
    return event.id


def event_seq(delivery: Delivery) -> int:
    """The ``seq`` extension the case put on the event."""
    event = delivery.event
    assert event is not None, f"delivery did not decode: {delivery.decode_error}"
    value = event.extensions["seq"]
    assert isinstance(value, int)
    return value
