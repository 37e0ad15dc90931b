"""The KV idempotency store's claims and done markers written a tick at a time, against
a real nats-server: what one tick holds (new, done and taken keys together), two
stores racing over the same keys in one tick, a refused marker, a broker that stops
answering, and a transport started anew."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crosswire import ClosedError, TransportError
from crosswire._policies.dedup import Claim
from crosswire._transports.jetstream.headers import Client
from crosswire._transports.jetstream.kvbatch import BatchWriter
from crosswire.jetstream import EmbeddedServer, JetStreamIdempotencyStore, JetStreamTransport
from crosswire.testing import eventually

pytestmark = pytest.mark.nats


class _Offline(Client):
    """A client that is never connected: what it would write stays in its buffer."""

    def __init__(self) -> None:
        super().__init__()
        self._max_pending_size = 1 << 20  # as connect() sets it: not connected, it buffers

    async def subscribe(self, subject: str, **kwargs: Any) -> Any:
        return SimpleNamespace(_id=1)


async def test_a_tick_writes_what_publish_now_writes_for_its_markers_then_claims() -> None:
    nc, expected = _Offline(), _Offline()
    writer = BatchWriter(nc, "B-1", 5.0, marker=b"100%")  # a % in it: the templates escape it
    await writer.start()
    writer.claim(b"a1", b"running 1")
    writer.mark(b"b2")
    writer.claim(b"c3", b"running 33")
    assert not nc._pending  # queued: written once the tick is over
    await asyncio.sleep(0)
    [command] = nc._pending
    reply = command.split(b" ", 3)[2].decode().rsplit(".", 1)[0] + "."  # "<inbox>."
    create = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n"
    expected.publish_now("$KV.B-1.b2", b"100%", f"{reply}2", None)  # markers first
    expected.publish_now("$KV.B-1.a1", b"running 1", f"{reply}1", create)
    expected.publish_now("$KV.B-1.c3", b"running 33", f"{reply}3", create)
    assert command == b"".join(expected._pending)
    assert nc.stats["out_msgs"] == expected.stats["out_msgs"] == 3
    assert nc.stats["out_bytes"] == expected.stats["out_bytes"]
    assert writer.ticks == 1


async def test_the_claims_of_one_tick_are_written_together(transport: JetStreamTransport) -> None:
    store = transport.idempotency_store(ttl=60)
    assert await store.claim("warm-up", lease=30) is Claim.NEW  # opens the bucket
    before = store.statistics()["ticks"]
    keys = [f"k-{i}" for i in range(100)]
    assert await asyncio.gather(*(store.claim(k, lease=30) for k in keys)) == [Claim.NEW] * 100
    assert store.statistics()["ticks"] - before == 1  # one write of 100 claims, not 100 round trips
    for k in keys[:50]:
        await store.complete(k)  # no await of a pub-ack: the 50 markers go out together
    assert store.statistics()["ticks"] - before == 1
    assert await asyncio.gather(*(store.claim(k, lease=30) for k in keys)) == [Claim.DONE] * 50 + [Claim.BUSY] * 50
    stats = store.statistics()
    assert stats["ticks"] - before == 3  # markers in one tick, the claims of the check in one more
    assert stats["done_unconfirmed"] == 0
    assert stats["leases_held"] == 51  # the warm-up's and the 50 not completed


async def test_a_tick_mixing_new_done_taken_and_released_keys(
    transport: JetStreamTransport, second: JetStreamTransport
) -> None:
    a = transport.idempotency_store(ttl=60)
    b = second.idempotency_store(ttl=60)
    assert await a.claim("done", lease=30) is Claim.NEW
    await a.complete("done")
    assert await b.claim("held-by-b", lease=30) is Claim.NEW
    assert await a.claim("released", lease=30) is Claim.NEW
    await a.release("released")  # a failed attempt: its retry must run
    assert await b.claim("expired", lease=0.2) is Claim.NEW  # then b's node dies
    await asyncio.sleep(0.3)
    keys = ["new-1", "done", "new-2", "held-by-b", "released", "expired", "new-3"]
    got = await asyncio.gather(*(a.claim(k, lease=30) for k in keys))
    assert got == [Claim.NEW, Claim.DONE, Claim.NEW, Claim.BUSY, Claim.NEW, Claim.NEW, Claim.NEW]
    # each NEW is a's lease now: its release frees the key, and b's late release does not
    await b.release("expired")
    assert await b.claim("expired", lease=30) is Claim.BUSY
    await a.release("expired")
    assert await b.claim("expired", lease=30) is Claim.NEW


async def test_two_stores_racing_over_many_keys_in_one_tick(
    transport: JetStreamTransport, second: JetStreamTransport
) -> None:
    a = transport.idempotency_store(ttl=60)
    b = second.idempotency_store(ttl=60)
    await asyncio.gather(a.claim("warm-a", lease=30), b.claim("warm-b", lease=30))
    keys = [f"race-{i}" for i in range(200)]
    got_a, got_b = await asyncio.gather(
        asyncio.gather(*(a.claim(k, lease=30) for k in keys for _ in range(2))),
        asyncio.gather(*(b.claim(k, lease=30) for k in keys for _ in range(2))),
    )
    for i, key in enumerate(keys):
        claims = [*got_a[2 * i : 2 * i + 2], *got_b[2 * i : 2 * i + 2]]
        assert claims.count(Claim.NEW) == 1, (key, claims)  # one owner per key, across both nodes
        assert claims.count(Claim.BUSY) == 3, (key, claims)


async def test_a_refused_marker_is_counted_not_raised(
    transport: JetStreamTransport, caplog: pytest.LogCaptureFixture
) -> None:
    store = transport.idempotency_store(ttl=60)
    assert await store.claim("k", lease=30) is Claim.NEW
    await transport.jetstream.delete_key_value(store.bucket)  # the marker has nowhere to go
    with caplog.at_level(logging.WARNING, "crosswire.jetstream"):
        await store.complete("k")  # returns: the handler's outcome stands
        await eventually(lambda: store.statistics()["done_unconfirmed"] > 0, "the marker's refusal", 5)
    assert store.statistics()["done_unconfirmed"] == 1
    assert "may run again" in caplog.text


async def test_a_broker_that_stops_answering_fails_claims_in_time(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "broker") as server:
        transport = JetStreamTransport(server.url, stream="KVSTALL", subject_prefix="kvstall", publish_timeout=0.5)
        async with transport:
            store = transport.idempotency_store(ttl=60)
            assert await store.claim("before", lease=30) is Claim.NEW
            assert server.pid is not None
            os.kill(server.pid, signal.SIGSTOP)  # connected, but nothing answers
            try:
                async with asyncio.timeout(5):  # never a hang
                    results = await asyncio.gather(
                        *(store.claim(f"stalled-{i}", lease=30) for i in range(10)), return_exceptions=True
                    )
                await store.complete("before")  # not waited for: returns while the broker is stopped
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert all(isinstance(r, TransportError) for r in results), results
            assert "no answer within 0.5s" in str(results[0])

            async def claims_again(key: str) -> bool:
                with contextlib.suppress(TransportError):
                    return await store.claim(key, lease=30) is Claim.NEW
                return False

            # the broker answers again: new claims work, and the late pub-acks of the
            # claims it took gave their leases back (not BUSY for the lease's 30 s)
            await eventually(lambda: claims_again("after"), "a claim after the stall", 10, interval=0.1)
            for i in range(10):
                assert await store.claim(f"stalled-{i}", lease=30) is Claim.NEW


async def test_a_transport_started_anew_gets_the_store_on_its_new_connection(
    transport: JetStreamTransport,
) -> None:
    store = transport.idempotency_store(ttl=60)
    assert await store.claim("first", lease=30) is Claim.NEW
    await store.complete("first")
    await transport.close()
    with pytest.raises(ClosedError):  # a closed transport is not started again behind its back
        await store.claim("first", lease=30)
    await transport.start()
    assert await store.claim("first", lease=30) is Claim.DONE
    assert await store.claim("second", lease=30) is Claim.NEW
    await store.complete("second")
    assert await store.claim("second", lease=30) is Claim.DONE
    assert store.statistics()["done_unconfirmed"] == 0


@pytest.fixture
async def stores(
    transport: JetStreamTransport, second: JetStreamTransport
) -> tuple[JetStreamIdempotencyStore, JetStreamIdempotencyStore]:
    """Two nodes' stores on one bucket, the first's bucket open (its writer started)."""
    a = transport.idempotency_store(ttl=60)
    b = second.idempotency_store(ttl=60)
    assert await a.claim("warm-up", lease=30) is Claim.NEW
    return a, b


async def test_a_claim_cancelled_before_its_tick_is_written_takes_no_lease(
    stores: tuple[JetStreamIdempotencyStore, JetStreamIdempotencyStore],
) -> None:
    a, b = stores
    task = asyncio.create_task(a.claim("k", lease=30))
    await asyncio.sleep(0)  # queued, not written yet
    task.cancel()  # a node stopping: the attempt is handed back
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await b.claim("k", lease=30) is Claim.NEW  # the next delivery, on another node, runs


async def test_claims_cancelled_among_others_of_their_tick_are_not_written(
    stores: tuple[JetStreamIdempotencyStore, JetStreamIdempotencyStore],
) -> None:
    a, b = stores
    before = a.statistics()["ticks"]
    tasks = [asyncio.create_task(a.claim(f"t-{i}", lease=30)) for i in range(6)]
    await asyncio.sleep(0)  # all six queued in one tick, not written yet
    for i in (0, 3, 5):  # the first, one in the middle, the last
        tasks[i].cancel()
    got = await asyncio.gather(*tasks, return_exceptions=True)
    assert [isinstance(r, asyncio.CancelledError) for r in got] == [True, False, False, True, False, True]
    assert [got[i] for i in (1, 2, 4)] == [Claim.NEW] * 3  # the others' pub-acks reach their claims
    assert a.statistics()["ticks"] - before == 1
    assert await asyncio.gather(*(b.claim(f"t-{i}", lease=30) for i in range(6))) == [
        Claim.NEW,
        Claim.BUSY,
        Claim.BUSY,
        Claim.NEW,
        Claim.BUSY,
        Claim.NEW,
    ]


async def test_a_claim_cancelled_while_awaiting_its_ack_gives_its_lease_back(
    stores: tuple[JetStreamIdempotencyStore, JetStreamIdempotencyStore],
) -> None:
    a, b = stores
    task = asyncio.create_task(a.claim("k", lease=30))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the tick is written: the server will take the claim
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def free() -> bool:  # not BUSY for the lease's 30 s: the late ack deleted it
        return await b.claim("k", lease=30) is Claim.NEW

    await eventually(free, "the cancelled claim's key free again", 5, interval=0.05)


async def test_claims_and_markers_work_on_after_the_broker_restarts(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "broker") as server:
        transport = JetStreamTransport(server.url, stream="KVRESTART", subject_prefix="kvrestart", publish_timeout=2.0)
        async with transport:
            store = transport.idempotency_store(ttl=60)
            assert await asyncio.gather(*(store.claim(f"k-{i}", lease=30) for i in range(20))) == [Claim.NEW] * 20
            for i in range(10):
                await store.complete(f"k-{i}")
            assert await store.claim("k-9", lease=30) is Claim.DONE  # the server has the markers
            await server.restart(hard=True)  # SIGKILL, then the same port and data

            async def claims_again() -> bool:
                with contextlib.suppress(TransportError):
                    return await store.claim("after", lease=30) is Claim.NEW
                return False

            await eventually(claims_again, "a claim on the reconnected connection", 20, interval=0.1)
            # what the bucket held survived, and the pub-acks still reach the store
            got = await asyncio.gather(*(store.claim(f"k-{i}", lease=30) for i in range(20)))
            assert got == [Claim.DONE] * 10 + [Claim.BUSY] * 10
            await store.complete("after")
            assert await store.claim("after", lease=30) is Claim.DONE
            assert store.statistics()["done_unconfirmed"] == 0
