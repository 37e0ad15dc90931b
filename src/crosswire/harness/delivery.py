"""Delivery: the offered events as CloudEvents, handed to the node over its control
channel (memory; held back while the node is down) or published to the stream
(JetStream; retried until the harness stops)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from .._envelope import Event, encode_event
from .._exceptions import CrosswireError
from .node_process import NodeProcess
from .traffic import POISON_EXTENSION, Offer

__all__ = ["Delivery", "DeliveryHost", "offer_event"]


def offer_event(o: Offer, source: str) -> Event[Any]:
    """The event an offer stands for."""
    event = Event.new(
        o.type,
        o.data,
        source=source,
        id=o.id,
        datacontenttype=o.content_type if o.data is not None else None,
        key=o.key,
        extensions={POISON_EXTENSION: o.poison} if o.poison else None,
    )
    if o.deadline is not None:
        event.deadline = int((time.time() + o.deadline) * 1000)
    return event


class DeliveryHost(Protocol):
    """What delivery needs of the harness that runs it."""

    @property
    def transport(self) -> str: ...
    @property
    def node(self) -> NodeProcess | None: ...
    @property
    def publisher(self) -> Any: ...
    @property
    def phase(self) -> str: ...
    @property
    def notes(self) -> list[str]: ...


class Delivery:
    def __init__(self, host: DeliveryHost) -> None:
        self.h = host
        self.backlog: list[Event[Any]] = []  # memory: events held back while the node is down
        self.sent = 0
        self._lock = asyncio.Lock()

    async def send(self, events: list[Event[Any]]) -> None:
        h = self.h
        async with self._lock:
            if h.transport == "memory":
                node = h.node
                if node is None or not node.alive:
                    self.backlog.extend(events)
                    return
                try:
                    await node.send({"t": "submit", "e": [encode_event(e) for e in events]})
                except (ConnectionError, OSError):
                    self.backlog.extend(events)
                    return
            else:
                delay = 0.05
                while True:
                    try:
                        await h.publisher.publish(events)
                        break
                    except (TimeoutError, CrosswireError, OSError) as exc:
                        if h.phase == "stopping":
                            h.notes.append(f"{len(events)} events not published: {exc}")
                            return
                        await asyncio.sleep(delay)
                        delay = min(1.0, delay * 2)
            self.sent += len(events)
