"""Node-level faults on JetStream: real node processes, SIGKILLed under load.

Each node runs ``node_proc.py`` in a subprocess against the session's nats-server;
the test publishes events itself and reads what the nodes did from their record
file and from the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from crosswire import Event
from crosswire.jetstream import JetStreamTransport
from crosswire.testing import eventually as _eventually

pytestmark = pytest.mark.nats

NODE = Path(__file__).with_name("node_proc.py")


#: node restarts are slow: a minute, checked every 50 ms
eventually = functools.partial(_eventually, timeout=60.0, interval=0.05)


class Record:
    """What the node processes wrote: handled events and poison attempts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, str, int, int]]:
        if not self.path.exists():
            return []
        out = []
        text = self.path.read_text()
        # complete lines only: a node's write may be under way while this reads the file
        for line in text[: text.rfind("\n") + 1].splitlines():
            kind, event_id, attempt, pid = line.split()
            out.append((kind, event_id, int(attempt), int(pid)))
        return out

    def handled(self) -> set[str]:
        return {event_id for kind, event_id, _, _ in self.lines() if kind == "H"}

    def handled_by(self, pid: int) -> set[str]:
        return {e for kind, e, _, p in self.lines() if kind == "H" and p == pid}

    def poison_attempts(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for kind, event_id, attempt, _ in self.lines():
            if kind == "P":
                out[event_id].append(attempt)
        return out


async def start_node(url: str, names: tuple[str, str], record: Path, *extra: str) -> asyncio.subprocess.Process:
    stream, prefix = names
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(NODE),
        url,
        stream,
        prefix,
        str(record),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = await proc.stdout.readline()
    except TimeoutError:
        line = b""
    if line.strip() != b"READY":
        proc.kill()
        _, err = await proc.communicate()
        raise AssertionError(f"node process did not start: {line!r}\n{err.decode()[-3000:]}")
    return proc


async def stop_node(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def items(n: int, poison: int = 0) -> list[Event[object]]:
    events: list[Event[object]] = [Event.new("load.item", f"ok-{i}".encode()) for i in range(n)]
    for i in range(poison):  # spread among the healthy ones
        events.insert((i + 1) * len(events) // (poison + 1), Event.new("load.item", f"poison-{i}".encode()))
    return events


async def publish(transport: JetStreamTransport, events: list[Event[object]]) -> None:
    for start in range(0, len(events), 200):
        await transport.publish(events[start : start + 200])


async def test_node_sigkilled_mid_load_then_restarted_loses_nothing(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    events = items(1500, poison=5)
    healthy = {e.id for e in events if not (e.data or b"").startswith(b"poison")}
    poison = {e.id for e in events} - healthy
    nodes.append(await start_node(nats_url, names, record.path, "--delay", "0.002"))
    await publish(transport, events)
    await eventually(lambda: len(record.handled()) >= 300, "the first node handled 300 events")
    nodes[0].kill()  # SIGKILL: in-flight deliveries are neither acked nor given back
    await nodes[0].wait()
    assert len(record.handled()) < len(healthy), "the first node finished before it was killed"

    nodes.append(await start_node(nats_url, names, record.path))
    await eventually(lambda: record.handled() >= healthy, "every healthy event handled after restart")
    letters = transport.dead_letter_store()

    async def dead_letter_ids() -> set[str]:
        return {d.event.id for d in await letters.list() if d.event is not None}

    for _ in range(200):
        if await dead_letter_ids() >= poison:
            break
        await asyncio.sleep(0.1)
    assert await dead_letter_ids() == poison  # every poison event dead-lettered, nothing else
    assert record.handled() == healthy  # handled or dead-lettered: 0 lost
    await stop_node(nodes[1])
    assert nodes[1].returncode == 0


async def test_poison_event_gets_exactly_max_attempts_while_traffic_flows(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    events = items(400, poison=3)
    healthy = {e.id for e in events if not (e.data or b"").startswith(b"poison")}
    poison = {e.id for e in events} - healthy
    # No breaker here: every delivery then reaches the handler, so the record counts them.
    nodes.append(await start_node(nats_url, names, record.path, "--dedup", "--no-breaker", "--max-attempts", "4"))
    for start in range(0, len(events), 20):  # a steady flow while the poison events retry
        await transport.publish(events[start : start + 20])
        await asyncio.sleep(0.02)
    await eventually(lambda: record.handled() >= healthy, "every healthy event handled")
    letters = transport.dead_letter_store()
    for _ in range(200):
        if len(await letters.list()) >= len(poison):
            break
        await asyncio.sleep(0.1)
    dead = await letters.list()
    assert {d.event.id for d in dead if d.event is not None} == poison
    for letter in dead:
        assert [a.number for a in letter.attempts] == [1, 2, 3, 4]
        assert "poison event" in letter.error.message
    await asyncio.sleep(0.5)  # nothing comes back after the dead letter
    attempts = record.poison_attempts()
    assert {k: sorted(v) for k, v in attempts.items()} == {p: [1, 2, 3, 4] for p in poison}
    handled_lines = [e for kind, e, _, _ in record.lines() if kind == "H"]
    assert sorted(handled_lines) == sorted(healthy)  # healthy traffic: each exactly once


async def test_two_nodes_share_a_stream_and_the_survivor_finishes(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    events = items(2000)
    expected = {e.id for e in events}
    nodes.append(await start_node(nats_url, names, record.path, "--delay", "0.003"))
    nodes.append(await start_node(nats_url, names, record.path, "--delay", "0.003"))
    victim, survivor = nodes
    await publish(transport, events)
    await eventually(
        lambda: len(record.handled_by(victim.pid)) >= 100 and len(record.handled_by(survivor.pid)) >= 100,
        "both nodes handling",
    )
    victim.kill()
    await victim.wait()
    by_victim = record.handled_by(victim.pid)
    assert len(by_victim) < len(expected) // 2 + 200, "the victim did most of the work before the kill"
    await eventually(lambda: record.handled() == expected, "every event handled by the survivor")
    assert expected - by_victim <= record.handled_by(survivor.pid)
    await stop_node(survivor)
    assert survivor.returncode == 0
