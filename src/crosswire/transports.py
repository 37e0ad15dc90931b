"""For transport authors: the interface every transport implements, and the in-process one.

A transport publishes batches of events and yields deliveries that can be acked,
retried after a delay, or terminated. Check a new transport with
:class:`crosswire.testing.TransportConformance`, parameterised by its :class:`Features`.
"""

from __future__ import annotations

from ._transports.base import Delivery as Delivery
from ._transports.base import Features as Features
from ._transports.base import Subscription as Subscription
from ._transports.base import Transport as Transport
from ._transports.memory import MemoryTransport as MemoryTransport

__all__ = ["Delivery", "Features", "MemoryTransport", "Subscription", "Transport"]
