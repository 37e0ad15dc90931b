"""A crosswire node in its own process, for the node-level fault tests.

    python node_proc.py URL STREAM PREFIX RECORD_FILE [--delay S] [--dedup] [--no-breaker] [--max-attempts N]
        [--retry-delay S] [--ack-wait S] [--drain-timeout S] [--concurrency N]

Handles ``load.item``: a payload starting with ``poison`` always fails (retryable),
one starting with ``crash`` SIGKILLs the node, anything else succeeds after
``--delay`` seconds. Every attempt is appended to RECORD_FILE as lines
``<S|H|P|C> <event id> <attempt> <pid>`` (S started, H handled, P poison attempt,
C crash) with a single unbuffered write each, so a SIGKILL loses no finished line; a
node that drained adds ``A - <deliveries it acknowledged> <pid>``.
Dead letters go to the JetStream dead-letter stream; ``--dedup`` uses the JetStream
KV idempotency store. Prints ``READY`` once consuming; SIGTERM drains and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import crosswire
from crosswire.jetstream import JetStreamTransport


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("stream")
    parser.add_argument("prefix")
    parser.add_argument("record")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--dedup", action="store_true")
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--no-breaker", action="store_true")
    parser.add_argument("--retry-delay", type=float, default=0.05)
    parser.add_argument("--ack-wait", type=float, default=2.0)
    parser.add_argument("--drain-timeout", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    fd = os.open(args.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    pid = os.getpid()
    app = crosswire.App("faults")

    @app.handler(
        "load.item",
        concurrency=args.concurrency,
        timeout=10.0,
        dedup=args.dedup,
        breaker=not args.no_breaker,
        retry=crosswire.Retry(
            max_attempts=args.max_attempts, initial=args.retry_delay, max_delay=max(0.2, args.retry_delay), jitter=0
        ),
    )
    async def handle(event: crosswire.Event[bytes]) -> None:
        os.write(fd, f"S {event.id} {event.attempt} {pid}\n".encode())
        if (event.data or b"").startswith(b"crash"):
            os.write(fd, f"C {event.id} {event.attempt} {pid}\n".encode())
            os.kill(pid, signal.SIGKILL)
        if (event.data or b"").startswith(b"poison"):
            os.write(fd, f"P {event.id} {event.attempt} {pid}\n".encode())
            raise RuntimeError("poison event")
        if args.delay:
            await asyncio.sleep(args.delay)
        os.write(fd, f"H {event.id} {event.attempt} {pid}\n".encode())

    transport = JetStreamTransport(args.url, stream=args.stream, subject_prefix=args.prefix)
    node = crosswire.Node(
        app,
        transport=transport,
        dead_letters=transport.dead_letter_store(),
        idempotency=transport.idempotency_store() if args.dedup else None,
        ack_wait=args.ack_wait,
        drain_timeout=args.drain_timeout,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with node:
        print("READY", flush=True)
        await stop.wait()
    # after the drain: the deliveries this node acknowledged (handled, or skipped as done)
    acknowledged = sum(b.handled for b in node.statistics().bindings.values())
    os.write(fd, f"A - {acknowledged} {pid}\n".encode())


if __name__ == "__main__":
    asyncio.run(main())
