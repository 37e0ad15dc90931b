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

__all__ = ["SUBMIT_BYTES", "Delivery", "DeliveryHost", "offer_event", "submit_messages"]

#: The most event bytes one ``submit`` message carries (a single larger event goes
#: alone). The node's ``max_pending_bytes`` bounds what it holds once submitted; a
#: submit waiting for room holds its whole message, decoded, on top of that, so the
#: message is kept small rather than ``batch`` events of any size.
SUBMIT_BYTES = 1024 * 1024


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


def submit_messages(events: list[Event[Any]], limit: int = SUBMIT_BYTES) -> list[list[bytes]]:
    """``events`` encoded, in groups of at most ``limit`` bytes (at least one event each)."""
    groups: list[list[bytes]] = []
    group: list[bytes] = []
    size = 0
    for event in events:
        raw = encode_event(event)
        if group and size + len(raw) > limit:
            groups.append(group)
            group, size = [], 0
        group.append(raw)
        size += len(raw)
    if group:
        groups.append(group)
    return groups


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
                done = 0
                try:
                    for group in submit_messages(events):
                        await node.send({"t": "submit", "e": group})
                        done += len(group)
                except (ConnectionError, OSError):
                    self.sent += done
                    self.backlog.extend(events[done:])
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
