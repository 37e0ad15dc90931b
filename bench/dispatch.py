"""Events/s through the whole node, against a hand-written queue loop and FastStream.

Runs, side by side in one process, with the same no-op async handler and the same
128-byte payload struct:

- ``crosswire``: ``node.submit`` → memory transport → router → dispatcher → trace?
  (off: no SDK provider) → dedup → breaker → timeout → handler → retry policy → ack,
  timed until every event is acknowledged (``wait_idle``);
- ``baseline_queue``: ``asyncio.Queue`` → ``msgspec`` decode → ``await handler``, the
  loop people write by hand (no policies, no settlement);
- ``faststream``: FastStream's in-memory ``TestNatsBroker`` with the same handler
  (skipped, reported as null, if FastStream is not installed);
- ``fused_ceiling``: every per-event step of the ``crosswire`` path in one function, with
  no module, class or layer between them (``bench/_ceiling.py``): how fast the node
  could be on this interpreter if its structure cost nothing.

Each contender runs ``--rounds`` times, interleaved; the median is reported.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from _ceiling import run_ceiling
from _loops import LOOPS, loop_factory

import crosswire


class Payload(msgspec.Struct):
    order_id: int
    sku: str
    note: str


def make_payload(i: int) -> Payload:
    p = Payload(order_id=i, sku="SKU-0001", note="")
    pad = 128 - len(msgspec.msgpack.encode(p))
    return Payload(order_id=i, sku="SKU-0001", note="x" * max(0, pad))


async def run_crosswire(n: int) -> float:
    app = crosswire.App("bench")
    count = 0

    @app.handler("bench.noop", concurrency=16, timeout=5.0, retry=crosswire.Retry(max_attempts=3))
    async def noop(event: crosswire.Event[Payload]) -> None:
        nonlocal count
        count += 1

    payloads = [make_payload(i) for i in range(n)]
    async with crosswire.Node(app, max_pending=4096) as node:
        t0 = time.perf_counter()
        for p in payloads:
            await node.submit("bench.noop", p)
        await node.wait_idle(120)
        elapsed = time.perf_counter() - t0
    assert count == n, (count, n)
    return n / elapsed


async def run_baseline(n: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4096)
    decoder = msgspec.msgpack.Decoder(Payload)
    encoder = msgspec.msgpack.Encoder()
    count = 0

    async def handler(p: Payload) -> None:
        nonlocal count
        count += 1

    async def consume() -> None:
        while True:
            data = await queue.get()
            await handler(decoder.decode(data))
            queue.task_done()

    payloads = [make_payload(i) for i in range(n)]
    workers = [asyncio.create_task(consume()) for _ in range(16)]
    t0 = time.perf_counter()
    for p in payloads:
        await queue.put(encoder.encode(p))
    await queue.join()
    elapsed = time.perf_counter() - t0
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert count == n
    return n / elapsed


async def run_fused_ceiling(n: int) -> float:
    return await run_ceiling(n, [make_payload(i) for i in range(n)], Payload)


async def run_faststream(n: int) -> float | None:
    try:
        from faststream.nats import NatsBroker, TestNatsBroker
    except ImportError:
        return None
    broker = NatsBroker()
    count = 0

    @broker.subscriber("bench.noop")
    async def noop(body: dict[str, Any]) -> None:
        nonlocal count
        count += 1

    payloads = [msgspec.to_builtins(make_payload(i)) for i in range(n)]
    async with TestNatsBroker(broker) as br:
        t0 = time.perf_counter()
        for p in payloads:
            await br.publish(p, "bench.noop")
        elapsed = time.perf_counter() - t0
    assert count == n, (count, n)
    return n / elapsed


def install_tracing() -> None:
    """A global SDK provider with a batching OTLP/HTTP exporter to a sink that discards
    every request: the cost of tracing on the node's side, export included."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    provider = TracerProvider()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), max_queue_size=65536))
    trace.set_tracer_provider(provider)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and rounds (about 10 s)")
    parser.add_argument("--events", type=int, default=None, help="events per round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per contender")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="trace crosswire: an SDK tracer provider exporting OTLP/HTTP (batched) to a local sink",
    )
    parser.add_argument("--loop", choices=LOOPS, default="asyncio", help="the event loop (uvloop: crosswire[fast])")
    args = parser.parse_args()
    if args.trace:
        install_tracing()
    n = args.events or (5_000 if args.quick else 50_000)
    rounds = args.rounds or (3 if args.quick else 5)
    contenders: dict[str, Callable[[int], Awaitable[float | None]]] = {
        "crosswire": run_crosswire,
        "baseline_queue": run_baseline,
        "faststream": run_faststream,
        "fused_ceiling": run_fused_ceiling,
    }
    results: dict[str, list[float]] = {k: [] for k in contenders}
    fs_n = max(1, n // 5)  # FastStream's test broker is slow; fewer events, same per-event metric
    for r in range(rounds):
        for name, fn in contenders.items():
            value = await fn(fs_n if name == "faststream" else n)
            if value is not None:
                results[name].append(value)
            print(
                f"round {r + 1}/{rounds} {name:15s} {'n/a' if value is None else f'{value:,.0f} events/s'}",
                file=sys.stderr,
            )
    eps = {k: (statistics.median(v) if v else None) for k, v in results.items()}
    cw, base, fs, ceiling = eps["crosswire"], eps["baseline_queue"], eps["faststream"], eps["fused_ceiling"]
    assert cw is not None and base is not None
    out = {
        "bench": "dispatch",
        "tracing": "otlp" if args.trace else "off",
        "loop": args.loop,
        "events_per_s": {k: (round(v) if v is not None else None) for k, v in eps.items()},
        "ratios": {
            "vs_baseline_queue": round(cw / base, 3),
            "vs_faststream": round(cw / fs, 2) if fs else None,
            "vs_fused_ceiling": round(cw / ceiling, 3) if ceiling else None,
        },
    }
    print(json.dumps(out))


def _loop_named() -> str:
    """``--loop`` from the command line, read before the loop exists (``main`` parses it again)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--loop", choices=LOOPS, default="asyncio")
    loop: str = pre.parse_known_args()[0].loop
    return loop


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory(_loop_named())) as runner:
        runner.run(main())
