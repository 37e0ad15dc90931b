"""The pull subscription's own queue: deliveries go to whichever iterator waits, and
an iterator cancelled after it was woken takes no wake-up away from another. A
delivery's ack is written once, and one the connection refuses says so."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_iterators_of_one_subscription_lose_no_wake_up() -> None:
    from types import SimpleNamespace

    from crosswire._transports.jetstream.headers import Client
    from crosswire._transports.jetstream.pull import JetStreamSubscription

    sub = JetStreamSubscription(Client(), "S", "C", 8, latest={}, on_close=lambda s: None)
    got: list[tuple[str, Any]] = []

    async def take(name: str) -> None:
        async for delivery in sub:
            got.append((name, delivery))

    first, second = asyncio.create_task(take("first")), asyncio.create_task(take("second"))
    await asyncio.sleep(0)  # both wait
    one = SimpleNamespace(superseded=False)
    sub._put(one)  # type: ignore[arg-type]
    first.cancel()  # woken, but gone before it takes anything
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert got == [("second", one)]
    two, stale = SimpleNamespace(superseded=False), SimpleNamespace(superseded=True)
    sub._put(stale)  # type: ignore[arg-type]
    sub._put(two)  # type: ignore[arg-type]
    sub._put(None)
    async with asyncio.timeout(2):
        await second
    assert got == [("second", one), ("second", two)]  # a superseded one is skipped
    assert first.cancelled()


class _Listener:
    """A subscription as a delivery sees it, with a connection that may refuse writes."""

    consumer = "C"
    confirmer = None

    def __init__(self) -> None:
        self.written: list[tuple[bytes, bytes]] = []
        self.settled: list[Any] = []
        self.finished: list[tuple[Any, str]] = []
        self.refuse = False

    def write(self, reply: bytes, payload: bytes) -> None:
        if self.refuse:
            raise ConnectionError("closed")
        self.written.append((reply, payload))

    def delivery_settled(self, delivery: Any) -> None:
        self.settled.append(delivery)

    def delivery_finished(self, delivery: Any, how: str) -> None:
        self.finished.append((delivery, how))


def _delivery(listener: _Listener, sequence: int) -> Any:
    from crosswire import Event
    from crosswire._transports.jetstream.delivery import JetStreamDelivery

    event = Event.new("t.x", b"{}", source="/s", datacontenttype="application/json")
    reply = b"$JS.ACK.S.C.1.%d.%d.1700000000000000000.0" % (sequence, sequence)
    return JetStreamDelivery(listener, "cw.t.x", reply, b"{}", None, prefix="cw.", read=(event, event.id))


async def test_an_ack_is_written_once_and_a_refused_one_names_the_consumer() -> None:
    import pytest

    from crosswire import TransportError

    listener = _Listener()
    acked, superseded, refused = _delivery(listener, 1), _delivery(listener, 2), _delivery(listener, 3)
    assert acked.event is not None and acked.stream_sequence == 1
    await acked.ack()
    await acked.ack()  # the first settlement stands
    await acked.terminate()
    assert listener.written == [(acked._reply, b"+ACK")] and listener.finished == [(acked, "ack")]
    superseded.supersede()
    await superseded.terminate()  # settled, but a newer delivery speaks for the message
    assert listener.settled == [acked, superseded] and len(listener.written) == 1
    listener.refuse = True
    with pytest.raises(TransportError, match=r"cannot settle delivery on C: ConnectionError\('closed'\)"):
        await refused.ack()
    assert refused.settled and listener.finished[-1] == (refused, "ack")
