"""Cluster-wide dedup on the JetStream KV store, with real node processes: a burst of
events sharing idempotency keys, consumed by two nodes at once, runs each key's
handler exactly once and settles every event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_node_faults import Record, eventually, publish, start_node, stop_node

from crosswire import Event
from crosswire.jetstream import JetStreamTransport

pytestmark = pytest.mark.nats


async def test_two_nodes_handle_each_idempotency_key_once(
    transport: JetStreamTransport,
    nats_url: str,
    names: tuple[str, str],
    tmp_path: Path,
    nodes: list[asyncio.subprocess.Process],
) -> None:
    record = Record(tmp_path / "record")
    keys = [f"order-{i}" for i in range(2000)]
    # three events per key (distinct ids, as producers retrying would send): two side
    # by side (one pull, one node, often one tick) and the third far behind (likely
    # pulled by the other node, while the first still runs or after it is done)
    copies = [[Event.new("load.item", f"ok-{key}-{c}".encode(), idempotency_key=key) for key in keys] for c in range(3)]
    events: list[Event[object]] = [e for pair in zip(copies[0], copies[1], strict=True) for e in pair] + copies[2]
    key_of = {e.id: e.dedup_key for e in events}
    for _ in range(2):
        nodes.append(await start_node(nats_url, names, record.path, "--dedup", "--delay", "0.004"))
    await publish(transport, events)

    async def settled() -> bool:  # every event acknowledged: handled, or skipped as a duplicate
        infos = await transport.jetstream.consumers_info(transport.stream)
        return bool(infos) and all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

    await eventually(settled, "every event settled")
    handled = [e for kind, e, _, _ in record.lines() if kind == "H"]
    by_key: dict[str, list[str]] = {}
    for event_id in handled:
        by_key.setdefault(key_of[event_id], []).append(event_id)
    assert sorted(by_key) == sorted(keys)  # nothing lost: every key ran
    assert [k for k, ids in by_key.items() if len(ids) > 1] == []  # and none ran twice
    for proc in nodes:
        await stop_node(proc)
        assert proc.returncode == 0
    # Both nodes took part. Which one runs a key is a race (the other's copies wait,
    # then are skipped), so one node may run nearly every key: count what each acked.
    acknowledged = {pid: count for kind, _, count, pid in record.lines() if kind == "A"}
    assert sorted(acknowledged) == sorted(proc.pid for proc in nodes)
    assert all(count > 0 for count in acknowledged.values()), acknowledged
    assert sum(acknowledged.values()) >= len(events), acknowledged
