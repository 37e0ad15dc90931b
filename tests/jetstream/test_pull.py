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

    def delivery_settled(self, delivery: Any, finished: str | None = None) -> None:
        self.settled.append(delivery)
        if finished is not None:
            self.finished.append((delivery, finished))


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


def _subscription(ack_wait: float | None = None) -> tuple[Any, list[tuple[bytes, bytes]], Any]:
    """A subscription fed straight from frames (no server), its writes kept; and a
    function that delivers the event as stream message ``sequence``, ``delivered`` times."""
    from crosswire import Event
    from crosswire._transports.jetstream.headers import Client
    from crosswire._transports.jetstream.publish import prepare
    from crosswire._transports.jetstream.pull import JetStreamSubscription

    sub = JetStreamSubscription(
        Client(), "S", "C", 1 << 20, latest={}, on_close=lambda s: None, subject_prefix="cw", ack_wait=ack_wait
    )
    written: list[tuple[bytes, bytes]] = []
    sub.write = lambda reply, payload: written.append((reply, payload))
    [(subject, body, block)] = prepare([Event.new("t.x", b"{}", source="/s")], "cw", cloudevents=True, limit=1 << 20)
    assert isinstance(block, bytes)

    def deliver(sequence: int, delivered: int = 1) -> bytes:
        reply = b"$JS.ACK.S.C.%d.%d.%d.1700000000000000000.0" % (delivered, sequence, sequence)
        assert sub._on_frame(subject.encode(), reply, body, block)
        return reply

    return sub, written, deliver


async def test_a_late_redelivery_of_an_acked_message_is_acked_again_and_what_is_kept_is_bounded() -> None:
    from crosswire._transports.jetstream.pull import _FINISHED_KEPT

    sub, written, deliver = _subscription()
    taken = aiter(sub)
    for sequence in range(1, 3 * _FINISHED_KEPT + 1):
        deliver(sequence)
        delivery = await anext(taken)
        await (delivery.ack() if sequence % 2 else delivery.terminate())
    assert len(sub._finished) + len(sub._finished_before) <= 2 * _FINISHED_KEPT + 1
    written.clear()
    newest, older, forgotten = 3 * _FINISHED_KEPT, 2 * _FINISHED_KEPT - 1, 1
    for sequence in (newest, older):
        reply = deliver(sequence, delivered=2)  # its lease ran out while the ack was on its way
        assert written[-1] == (reply, b"+TERM" if sequence % 2 == 0 else b"+ACK")
    assert sub.late_redeliveries == 2 and not sub._ready
    deliver(forgotten, delivered=2)  # too long ago: handed out again
    again = await anext(taken)
    assert again.stream_sequence == forgotten and again.attempt == 2


async def test_deliveries_waiting_in_the_queue_have_their_leases_renewed() -> None:
    sub, written, deliver = _subscription(ack_wait=0.3)
    taken = aiter(sub)
    replies = [deliver(sequence) for sequence in (1, 2, 3)]
    first = await anext(taken)  # taken: the consumer's to settle, no longer renewed here
    newer = deliver(3, delivered=2)  # the queued delivery of 3 is superseded: not renewed
    await sub._renew_waiting()
    assert written == []  # not due yet
    await asyncio.sleep(0.11)  # past ack_wait / 3
    await sub._renew_waiting()
    assert written == [(replies[1], b"+WPI"), (newer, b"+WPI")]
    await sub._renew_waiting()
    assert len(written) == 2  # renewed: not again before they are due
    assert first.stream_sequence == 1 and replies[2] not in dict(written)


async def test_a_settlement_for_good_waits_for_its_confirmation_and_drops_the_attempt_record() -> None:
    """An ack or term is written at once; it then waits for the confirmation only when
    too many are unconfirmed, and drops the attempt record only when there may be one
    (a redelivery, or a record written)."""
    from types import SimpleNamespace

    from crosswire import Event
    from crosswire._transports.jetstream.delivery import JetStreamDelivery

    calls: list[Any] = []

    async def forget(consumer: str, sequence: int) -> None:
        calls.append(("forget", consumer, sequence))

    async def wait() -> None:
        calls.append("confirmed")

    listener = _Listener()
    over_limit = [False]
    listener.confirmer = SimpleNamespace(acked=lambda: over_limit[0], wait=wait)  # type: ignore[assignment]
    store: Any = SimpleNamespace(forget=forget)
    event = Event.new("t.x", b"{}", source="/s", datacontenttype="application/json")

    def delivery(sequence: int, delivered: int) -> Any:
        reply = b"$JS.ACK.S.C.%d.%d.%d.1700000000000000000.0" % (delivered, sequence, sequence)
        return JetStreamDelivery(listener, "cw.t.x", reply, b"{}", None, store, "cw.", (event, event.id))

    await delivery(1, 1).ack()
    assert calls == [] and listener.finished[-1][1] == "ack"  # a first delivery: no record
    await delivery(2, 3).terminate()
    assert calls == [("forget", "C", 2)] and listener.finished[-1][1] == "term"
    over_limit[0] = True
    await delivery(3, 1).ack()
    assert calls[1:] == ["confirmed"]
    await delivery(4, 2).ack()
    assert calls[2:] == ["confirmed", ("forget", "C", 4)]
    assert [payload for _, payload in listener.written] == [b"+ACK", b"+TERM", b"+ACK", b"+ACK"]
