"""Drain and restart on JetStream, with real node processes (``node_proc.py``).

A drain hands back every delivery whose handler did not start, and the broker has
them before the node's connection closes; the attempt budget counts handler runs,
so restarts never dead-letter an event that ran fewer than ``max_attempts`` times;
a dead letter's history holds the attempts of earlier processes; an event that
kills its node every time still ends in the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from test_node_faults import Record, eventually, items, publish, start_node, stop_node

from crosswire import Event
from crosswire.jetstream import JetStreamTransport
from crosswire.testing import eventually as wait_until

pytestmark = pytest.mark.nats


def starts(record: Record) -> Counter[str]:
    """Handler runs per event id (every run writes an S line first)."""
    return Counter(e for kind, e, _, _ in record.lines() if kind == "S")


async def consumer_state(transport: JetStreamTransport) -> tuple[int, int]:
    """(num_ack_pending, delivered consumer sequence) of the test's one consumer.

    A nak'd message stays in num_ack_pending until it is delivered again, so only the
    next consumer shows that the broker has it back."""
    [info] = await transport.jetstream.consumers_info(transport.stream)
    return info.num_ack_pending or 0, info.delivered.consumer_seq or 0


async def test_drain_hands_back_unstarted_deliveries_before_the_connection_closes(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    events = items(2000)
    # ack_wait 30 s: anything not handed back would stall the next node for 30 s.
    slow = ("--delay", "0.2", "--concurrency", "4", "--ack-wait", "30", "--drain-timeout", "0.5")
    first = await start_node(nats_url, names, record.path, *slow)
    nodes.append(first)
    await publish(transport, events)
    await eventually(lambda: len(record.handled()) >= 8, "the first node handles a few")
    pending_before, delivered_before = await consumer_state(transport)
    assert pending_before > 100  # it holds a full prefetch
    await stop_node(first)
    assert first.returncode == 0
    _, delivered_after = await consumer_state(transport)
    assert delivered_after == delivered_before, "the node kept pulling during its drain"

    second = await start_node(nats_url, names, record.path, "--ack-wait", "30")
    nodes.append(second)
    t0 = time.monotonic()
    try:
        # what the first node held comes first: the broker has it back, no ack_wait
        await eventually(lambda: len(record.handled_by(second.pid)) > 0, "the next node handles", timeout=1.0)
        await eventually(lambda: len(record.handled()) == len(events), "every event handled", timeout=20)
        took = time.monotonic() - t0
    finally:
        await stop_node(second)
    assert took < 5, f"the next node needed {took:.1f}s: handed-back events waited for ack_wait"
    # only the few that were running when the drain deadline passed ran twice
    assert all(n <= 2 for n in starts(record).values())


async def test_clean_restarts_never_spend_attempts_of_events_that_did_not_run(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    events = items(300)
    await publish(transport, events)
    # Each node runs 2 handlers at a time and drains past its deadline (0.1 s < 0.5 s
    # handler): the rest of its prefetch of 300 never started.
    slow = ("--delay", "0.5", "--concurrency", "2", "--max-attempts", "2", "--ack-wait", "5", "--drain-timeout", "0.1")
    for _ in range(4):
        before = sum(starts(record).values())
        node = await start_node(nats_url, names, record.path, *slow)
        nodes.append(node)
        await eventually(lambda b=before: sum(starts(record).values()) >= b + 2, "the node starts handlers")
        await stop_node(node)
    last = await start_node(nats_url, names, record.path, "--max-attempts", "2", "--ack-wait", "5")
    nodes.append(last)
    letters_store = transport.dead_letter_store()
    try:

        async def settled() -> bool:
            return len(record.handled()) + len(await letters_store.list()) >= len(events)

        await wait_until(settled, "every event handled or dead-lettered", 30)
    finally:
        await stop_node(last)
    letters = await letters_store.list()
    runs = starts(record)
    wrongly = [
        (letter.event.id, runs[letter.event.id]) for letter in letters if letter.event and runs[letter.event.id] < 2
    ]
    assert not wrongly, f"{len(wrongly)} events dead-lettered after fewer than max_attempts=2 runs: {wrongly[:5]}"
    assert len(record.handled()) + len(letters) == len(events)


async def test_a_dead_letter_keeps_the_attempts_of_earlier_processes(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    poison = Event.new("load.item", b"poison-x")
    opts = ("--max-attempts", "3", "--retry-delay", "1.0", "--no-breaker")
    first = await start_node(nats_url, names, record.path, *opts)
    nodes.append(first)
    await transport.publish([poison])
    await eventually(lambda: len(record.poison_attempts()[poison.id]) >= 1, "attempt 1 in the first node")
    await stop_node(first)  # attempt 2 is due in 1 s: the next node makes it
    second = await start_node(nats_url, names, record.path, *opts)
    nodes.append(second)
    store = transport.dead_letter_store()
    try:

        async def lettered() -> bool:
            return bool(await store.list())

        await wait_until(lettered, "the poison event dead-lettered", 20)
    finally:
        await stop_node(second)
    [letter] = await store.list()
    assert [a.number for a in letter.attempts] == [1, 2, 3]
    pids = {pid for kind, e, _, pid in record.lines() if kind == "P" and e == poison.id}
    assert first.pid in pids and second.pid in pids
    assert record.poison_attempts()[poison.id] == [1, 2, 3]


async def test_an_event_that_kills_its_node_every_run_is_dead_lettered_after_max_attempts(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    crash = Event.new("load.item", b"crash-x")
    await transport.publish([crash])
    store = transport.dead_letter_store()
    opts = ("--max-attempts", "3", "--ack-wait", "1")
    for _ in range(6):
        node = await start_node(nats_url, names, record.path, *opts)
        nodes.append(node)

        async def crashed_or_lettered(node: asyncio.subprocess.Process = node) -> bool:
            return node.returncode is not None or bool(await store.list())

        try:
            await wait_until(crashed_or_lettered, "the node crashes or dead-letters the event", 15)
        finally:
            await stop_node(node)
        if await store.list():
            break
    [letter] = await store.list()
    assert letter.event is not None and letter.event.id == crash.id
    crashes = [a for kind, e, a, _ in record.lines() if kind == "C" and e == crash.id]
    assert len(crashes) == 3, crashes
