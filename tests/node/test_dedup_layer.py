"""The dedup layer against the node's in-memory store: a concurrent duplicate waits
and is skipped once the first succeeded, runs once the first failed; the store evicts
the least recently written key first."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest

from crosswire import Attempt, ErrorCode, ErrorInfo, Event, Outcome
from crosswire._policies.dedup import Claim, Dedup
from crosswire.stores import MemoryIdempotencyStore


def _twins() -> tuple[Attempt, Attempt]:
    event = Event.new("t.x", b"", idempotency_key="k")
    return Attempt(event=event, binding="b"), Attempt(event=copy.copy(event), binding="b")


async def test_a_concurrent_duplicate_waits_and_is_skipped_after_success() -> None:
    runs = 0

    async def handler(attempt: Attempt) -> Outcome:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return Outcome()

    layer = Dedup(store=MemoryIdempotencyStore()).layer(handler)
    first, second = _twins()
    outcomes = await asyncio.gather(layer(first), layer(second))
    assert runs == 1 and all(o.error is None for o in outcomes) and layer.skipped == 1


async def test_a_concurrent_duplicate_runs_after_the_first_failed() -> None:
    runs = 0

    async def handler(attempt: Attempt) -> Outcome:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        if runs == 1:
            return Outcome(error=ErrorInfo.of(ErrorCode.UNAVAILABLE, "down"))
        return Outcome()

    layer = Dedup(store=MemoryIdempotencyStore()).layer(handler)
    first, second = _twins()
    a, b = await asyncio.gather(layer(first), layer(second))
    assert runs == 2 and a.error is not None and b.error is None and layer.skipped == 0


async def test_a_handler_that_raises_releases_the_key() -> None:
    store = MemoryIdempotencyStore()

    async def handler(attempt: Attempt) -> Outcome:
        raise asyncio.CancelledError

    first, _ = _twins()
    layer = Dedup(store=store).layer(handler)
    with pytest.raises(asyncio.CancelledError):
        await layer(first)
    assert store.claim_now("b\x1fk", lease=1.0) is Claim.NEW


def test_the_least_recently_written_key_is_evicted_first() -> None:
    store = MemoryIdempotencyStore(max_keys=2)
    assert store.claim_now("a", lease=60) is Claim.NEW
    assert store.claim_now("b", lease=60) is Claim.NEW
    store.complete_now("a")  # written after b
    assert store.claim_now("c", lease=60) is Claim.NEW  # evicts b
    assert store.claim_now("a", lease=60) is Claim.DONE
    assert store.claim_now("b", lease=60) is Claim.NEW
    assert store.statistics().keys == 2


def test_a_full_store_evicts_the_oldest_sixteenth_of_its_keys_at_once() -> None:
    store = MemoryIdempotencyStore(max_keys=64)
    for i in range(64):
        assert store.claim_now(f"k{i}", lease=60) is Claim.NEW
    store.complete_now("k0")  # written last now: not among the oldest
    assert store.statistics().keys == 64
    assert store.claim_now("k64", lease=60) is Claim.NEW  # over max_keys: drops k1..k5
    assert store.statistics().keys == 60
    assert store.claim_now("k0", lease=60) is Claim.DONE
    assert store.claim_now("k6", lease=60) is Claim.BUSY  # still held
    assert store.claim_now("k5", lease=60) is Claim.NEW  # forgotten, so claimable again
    assert store.statistics().keys == 61


def test_a_churning_store_stays_within_max_keys_and_keeps_the_newest() -> None:
    store = MemoryIdempotencyStore(max_keys=1000)
    for i in range(20_000):
        assert store.claim_now(f"k{i}", lease=60) is Claim.NEW
        store.complete_now(f"k{i}")
        keys = store.statistics().keys
        assert keys <= 1000
        if i >= 1000:  # full once: never below what a sixteenth's eviction leaves
            assert keys >= 1000 - 1000 // 16
    kept = 1000 - 1000 // 16
    assert all(store.claim_now(f"k{i}", lease=60) is Claim.DONE for i in range(20_000 - kept, 20_000))
    assert store.claim_now(f"k{20_000 - 1000 - 1}", lease=60) is Claim.NEW


def test_a_lease_that_ran_out_is_taken_over_and_a_done_key_runs_again_after_its_ttl() -> None:
    store = MemoryIdempotencyStore(ttl=0.05)
    assert store.claim_now("a", lease=0.05) is Claim.NEW
    assert store.claim_now("a", lease=0.05) is Claim.BUSY
    time.sleep(0.06)  # the holder died: its lease ran out
    assert store.claim_now("a", lease=60) is Claim.NEW
    store.complete_now("a")
    assert store.claim_now("a", lease=60) is Claim.DONE
    store.release_now("a")  # a done key is not given up by a release
    assert store.claim_now("a", lease=60) is Claim.DONE
    time.sleep(0.06)  # past the TTL
    assert store.claim_now("a", lease=60) is Claim.NEW
    store.release_now("a")
    assert store.claim_now("a", lease=60) is Claim.NEW
    assert store.statistics().keys == 1
