"""The JetStream KV idempotency store and the dead-letter stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from crosswire import ErrorCode, ErrorInfo, Event
from crosswire._deadletter import AttemptRecord, DeadLetter, ReplayRecord, dead_letter_id
from crosswire._policies.dedup import Claim
from crosswire.jetstream import JetStreamDeadLetterStore, JetStreamIdempotencyStore, JetStreamTransport

pytestmark = pytest.mark.nats


async def test_claims_across_two_clients(transport: JetStreamTransport, second: JetStreamTransport) -> None:
    a = transport.idempotency_store(ttl=60)
    b = second.idempotency_store(ttl=60)
    assert await a.claim("binding:evt-1", lease=30) is Claim.NEW
    assert await b.claim("binding:evt-1", lease=30) is Claim.BUSY  # a holds a live lease
    await a.release("binding:evt-1")  # a's attempt failed
    assert await b.claim("binding:evt-1", lease=30) is Claim.NEW  # the retry on b runs
    assert await a.claim("binding:evt-1", lease=30) is Claim.BUSY
    await b.complete("binding:evt-1")
    assert await a.claim("binding:evt-1", lease=30) is Claim.DONE
    assert await b.claim("binding:evt-1", lease=30) is Claim.DONE
    assert await a.claim("binding:evt-2", lease=30) is Claim.NEW  # other keys are independent


async def test_expired_lease_is_taken_over(transport: JetStreamTransport, second: JetStreamTransport) -> None:
    a = transport.idempotency_store()
    b = second.idempotency_store()
    assert await a.claim("k with spaces/and:colons", lease=0.3) is Claim.NEW  # then a's node dies
    assert await b.claim("k with spaces/and:colons", lease=10) is Claim.BUSY
    await asyncio.sleep(0.4)
    assert await b.claim("k with spaces/and:colons", lease=10) is Claim.NEW
    await a.release("k with spaces/and:colons")  # a's late release must not free b's lease
    assert await a.claim("k with spaces/and:colons", lease=10) is Claim.BUSY


async def test_racing_claims_give_exactly_one_owner(transport: JetStreamTransport, second: JetStreamTransport) -> None:
    stores = [transport.idempotency_store(), second.idempotency_store()]
    for key in ("race-1", "race-2", "race-3"):
        results = await asyncio.gather(*(stores[i % 2].claim(key, lease=30) for i in range(20)))
        assert results.count(Claim.NEW) == 1, results
        assert results.count(Claim.BUSY) == 19


async def test_done_keys_expire_with_the_bucket_ttl(transport: JetStreamTransport) -> None:
    store = JetStreamIdempotencyStore(transport, bucket=f"{transport.stream}_SHORT", ttl=1.0)
    assert await store.claim("k", lease=30) is Claim.NEW
    await store.complete("k")
    assert await store.claim("k", lease=30) is Claim.DONE
    await asyncio.sleep(1.6)
    assert await store.claim("k", lease=30) is Claim.NEW
    await transport.jetstream.delete_key_value(f"{transport.stream}_SHORT")


def letter(binding: str, event: Event[object], at: float, message: str = "boom") -> DeadLetter:
    error = ErrorInfo.of(ErrorCode.HANDLER_ERROR, message, retryable=True)
    return DeadLetter(
        id=dead_letter_id(binding, event.id),
        binding=binding,
        event=event,
        error=error,
        attempts=[AttemptRecord(number=1, at=at - 1, error=error)],
        dead_at=at,
    )


async def test_dead_letters_put_get_list_purge(transport: JetStreamTransport) -> None:
    store = transport.dead_letter_store()
    assert isinstance(store, JetStreamDeadLetterStore)
    now = time.time()
    e1 = Event.new("order.created", b"1")
    e2 = Event.new("order.paid", b"2")
    e3 = Event.new("order.created", b"3")
    l1 = letter("orders.reserve", e1, now - 30)
    l2 = letter("orders.bill", e2, now - 20)
    l3 = letter("orders.reserve", e3, now - 10)
    for item in (l3, l1, l2):  # put order differs from dead_at order
        await store.put(item)

    got = await store.get(l1.id)
    assert got is not None and got.event == e1 and got.error == l1.error and got.attempts == l1.attempts
    assert await store.get("orders.reserve:nope") is None

    assert [d.id for d in await store.list()] == [l1.id, l2.id, l3.id]  # oldest first
    assert [d.id for d in await store.list(binding="orders.reserve")] == [l1.id, l3.id]
    assert [d.id for d in await store.list(type="order.paid")] == [l2.id]
    assert [d.id for d in await store.list(binding="orders.reserve", type="order.paid")] == []
    assert [d.id for d in await store.list(limit=2)] == [l1.id, l2.id]

    # Putting the same letter again replaces it (one message per letter).
    l1.replays.append(ReplayRecord(at=now, event_id="replayed-1"))
    await store.put(l1)
    again = await store.get(l1.id)
    assert again is not None and [r.event_id for r in again.replays] == ["replayed-1"]
    assert len(await store.list()) == 3
    info = await transport.jetstream.stream_info(store.stream)
    assert info.state.messages == 3

    assert await store.purge([l2.id, "missing"]) == 1
    assert [d.id for d in await store.list()] == [l1.id, l3.id]
    assert await store.purge() == 2
    assert await store.list() == []


class _Delaying:
    """A TCP proxy to the server that delays every byte ``delay`` seconds each way (a
    broker some way off), keeping the order and the throughput."""

    def __init__(self, target: str, delay: float) -> None:
        host, port = target.removeprefix("nats://").rsplit(":", 1)
        self.target = (host, int(port))
        self.delay = delay
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        return f"nats://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for r, w in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(r, w))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay, data))
        finally:
            queue.put_nowait((0.0, b""))
            await sender

    async def close(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_listing_thousands_of_letters_is_a_few_round_trips(
    transport: JetStreamTransport, nats_url: str, names: tuple[str, str]
) -> None:
    """``crosswire dlq list`` and replay after an outage, from a broker 20 ms away: one
    request per letter, each awaited in turn, took over a minute for 3,000 letters; the
    stream is read in batches of pipelined requests, and the oldest ``limit`` still
    come first, filtered as asked."""
    store = transport.dead_letter_store()
    now = time.time()
    letters = [
        letter(f"b{i % 2}", Event.new(f"t.{i % 3}", b"x" * 100), now - 10_000 + ((i * 7919) % 3000))
        for i in range(3000)
    ]
    for start in range(0, len(letters), 250):  # stored in an order unlike dead_at's
        await asyncio.gather(*(store.put(item) for item in letters[start : start + 250]))
    await store.put(letters[0])  # stored again: a gap in the stream's sequences
    by_age = sorted(letters, key=lambda d: d.dead_at)

    proxy = _Delaying(nats_url, 0.010)
    stream, prefix = names
    far = JetStreamTransport(await proxy.start(), stream=stream, subject_prefix=prefix, read_only=True)
    try:
        async with far, asyncio.timeout(20):  # at 20 ms a round trip, 3,000 of them in turn take 60 s
            oldest = await far.dead_letter_store().list(limit=5)
        assert [d.id for d in oldest] == [d.id for d in by_age[:5]]
    finally:
        await proxy.close()

    everything = await store.list(limit=10_000)
    assert [d.id for d in everything] == [d.id for d in by_age]
    wanted = [d.id for d in by_age if d.binding == "b1" and d.event_type == "t.2"]
    assert [d.id for d in await store.list(binding="b1", type="t.2", limit=10_000)] == wanted
    assert [d.id for d in await store.list(binding="b1", type="t.2", limit=3)] == wanted[:3]
    assert await store.list(limit=0) == []


async def test_dead_letter_of_undecodable_bytes_round_trips(transport: JetStreamTransport) -> None:
    store = transport.dead_letter_store()
    error = ErrorInfo.of(ErrorCode.INVALID_ARGUMENT, "malformed: not msgpack", retryable=False)
    item = DeadLetter(id="b:raw-1", binding="b", event=None, raw=b"\xc1\x00", error=error)
    await store.put(item)
    got = await store.get("b:raw-1")
    assert got is not None and got.event is None and got.raw == b"\xc1\x00"
    assert got.event_type is None


async def test_dead_letters_are_shared_between_clients(
    transport: JetStreamTransport, second: JetStreamTransport
) -> None:
    item = letter("b", Event.new("x.y", b""), time.time())
    await transport.dead_letter_store().put(item)
    got = await second.dead_letter_store().get(item.id)
    assert got is not None and got.id == item.id
