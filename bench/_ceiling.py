"""The ceiling of ``bench/dispatch.py``'s crosswire figure on this interpreter: one
function doing, for every event, the steps the node does on that path — with no module,
class or layer boundary between them.

It is not a design anyone should ship (every policy inlined into one loop, nothing
configurable, nothing but the success path); it answers one question: how fast could
the node be if its structure cost nothing? The steps, in the node's order:

- submit: ``Event.new`` (id, time, MessagePack payload), the pending entry (id,
  binding) with its size, the ``max_pending`` bound (wait for room), the idle flag;
- memory transport: the publish dedup window (id seen? drop ids older than it), a
  sequence number, the event's shallow copy for its group, an ``Entry`` with its key;
- subscription: hand-out with prefetch accounting, the delivery and its lease deadline;
- dispatcher: per-key order check, running / processed counters;
- settle: in-flight set, replay-target and attempt-budget checks, an ``Attempt``;
- dedup (in-memory, TTL'd, bounded): claim, then done;
- breaker: state check, then counting the success in its rolling window;
- timeout: the deadline (the event's own too), registering the running task with the
  watch and removing it;
- handler adapter: payload decode into the annotated type, the call, ``OK``;
- retry: a successful outcome passes; latency histogram; ack (lease, key release);
  the handled counter, the attempt history, the pending entry's removal.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import time
from collections import deque
from typing import Any

import msgspec

import crosswire
from crosswire._binding import LATENCY_BUCKETS
from crosswire._types import OK, Attempt, Outcome

__all__ = ["run_ceiling"]


class _Entry:
    __slots__ = ("attempt", "event", "key", "seq")

    def __init__(self, event: crosswire.Event[Any], seq: int) -> None:
        self.event, self.seq, self.key, self.attempt = event, seq, event.partitionkey, 1


class _Delivery:
    __slots__ = ("attempt", "entry", "settled")

    def __init__(self, entry: _Entry) -> None:
        self.entry, self.attempt, self.settled = entry, entry.attempt, False


async def run_ceiling(n: int, payloads: list[Any], payload_type: type, *, max_pending: int = 4096) -> float:
    """Events/s of ``n`` events of ``payloads`` through the fused loop (16 workers)."""
    binding, ack_wait, max_attempts, window = "bench.noop", 30.0, 3, 120.0
    loop = asyncio.get_running_loop()
    decoder = msgspec.msgpack.Decoder(payload_type)
    count = 0

    async def handler(event: crosswire.Event[Any]) -> None:
        nonlocal count
        count += 1

    pending: dict[tuple[str, str], int] = {}
    sizes = [0]  # bytes pending
    idle, room = asyncio.Event(), asyncio.Event()
    idle.set()
    room.set()
    seen: dict[str, None] = {}
    order: deque[tuple[float, str]] = deque()
    ready: deque[_Entry] = deque()
    getters: deque[asyncio.Future[None]] = deque()
    unsettled: dict[_Delivery, float] = {}
    waiting: dict[str, deque[_Delivery]] = {}
    in_flight: set[_Delivery] = set()
    history: dict[tuple[str, str], list[Any]] = {}
    counters = {"running": 0, "processed": 0, "handled": 0, "group_in_flight": 0}
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    dedup: dict[str, float] = {}  # key -> expiry: a lease's, or negated, a done key's (as the node's store)
    monotonic_loop = type(loop).time is asyncio.BaseEventLoop.time  # as the timeout's watch
    slots: deque[list[int]] = deque()
    slot_end = [-math.inf]
    window_calls = [0]
    watch: dict[asyncio.Task[Any], float] = {}
    due = [math.inf]

    async def work() -> None:
        while True:
            if not ready or getters:
                waiter = loop.create_future()
                getters.append(waiter)
                await waiter
                continue
            entry = ready.popleft()
            delivery = _Delivery(entry)
            unsettled[delivery] = loop.time() + ack_wait
            counters["group_in_flight"] += 1
            if entry.key is not None and entry.key in waiting:
                raise AssertionError("keyed events are not on this path")
            counters["running"] += 1
            in_flight.add(delivery)
            event = entry.event
            number = delivery.attempt
            if (event.extensions and event.extensions.get("cwreplaytarget") not in (None, binding)) or (
                number > max_attempts
            ):
                raise AssertionError("not on this path")
            event.attempt = number
            t0 = time.perf_counter()
            attempt = Attempt(event=event, binding=binding, number=number)
            key = f"{binding}\x1f{event.idempotencykey or event.id}"
            now = time.monotonic()
            claimed = dedup.get(key)
            if claimed is not None and abs(claimed) > now:
                raise AssertionError("no duplicates on this path")
            dedup[key] = now + 60.0
            if len(dedup) > 100_000:
                for old in list(itertools.islice(dedup, len(dedup) - 100_000 + 100_000 // 16)):
                    del dedup[old]
            now = time.monotonic()
            deadline = now + 5.0
            if event.deadline is not None:
                raise AssertionError("no event deadlines on this path")
            attempt.deadline = deadline
            task = asyncio.current_task()
            assert task is not None
            when = deadline if monotonic_loop else deadline - now + loop.time()
            watch[task] = when
            if when < due[0]:
                due[0] = when
            try:
                event.with_payload(decoder.decode(event.data or b""))
                outcome = OK if await handler(event) is None else Outcome()
            finally:
                watch.pop(task, None)
            now = time.monotonic()
            if now >= slot_end[0]:
                slot = int(now)
                while slots and slots[0][0] <= slot - 10:
                    window_calls[0] -= slots.popleft()[1]
                if not slots or slots[-1][0] != slot:
                    slots.append([slot, 0, 0])
                slot_end[0] = slot + 1.0
            slots[-1][1] += 1
            window_calls[0] += 1
            dedup.pop(key, None)
            dedup[key] = -(time.monotonic() + 3600.0)
            elapsed = time.perf_counter() - t0
            buckets[bisect.bisect_left(LATENCY_BUCKETS, elapsed)] += 1
            if outcome.error is not None or outcome.emitted:
                raise AssertionError("only successes on this path")
            if not delivery.settled:
                delivery.settled = True
                del unsettled[delivery]
                counters["group_in_flight"] -= 1
            counters["handled"] += 1
            history.pop((event.id, binding), None)
            size = pending.pop((event.id, binding), None)
            if size is not None:
                sizes[0] -= size
                if not pending:
                    idle.set()
                    room.set()
                elif not room.is_set() and len(pending) < max_pending:
                    room.set()
            in_flight.discard(delivery)
            counters["running"] -= 1
            counters["processed"] += 1

    workers = [asyncio.create_task(work()) for _ in range(16)]
    seq = 0
    t0 = time.perf_counter()
    for payload in payloads[:n]:
        event = crosswire.Event.new(binding, payload, source="bench")
        size = len(event.data or b"")
        while pending and len(pending) + 1 > max_pending:
            room.clear()
            await room.wait()
        pair = (event.id, binding)
        if pair not in pending:
            pending[pair] = size
            sizes[0] += size
        idle.clear()
        now = time.monotonic()
        while order and order[0][0] <= now - window:
            del seen[order.popleft()[1]]
        if event.id in seen:
            continue
        seen[event.id] = None
        order.append((now, event.id))
        seq += 1
        ready.append(_Entry(event.__copy__(), seq))  # type: ignore[attr-defined]  # msgspec: shallow copy
        while getters:
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                break
    await idle.wait()
    elapsed = time.perf_counter() - t0
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert count == n, (count, n)
    return n / elapsed
