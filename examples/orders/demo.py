"""`make demo`: the order pipeline across Python, Go and Rust on the embedded JetStream.

A Python producer submits orders; Python validates them, Go prices them (and emits
order.priced), Rust checks them for fraud (failing transiently on some, which are
retried), Python records the priced totals. Impossible orders are dead-lettered.
Prints what happened: events per runtime, retries, dead letters, latency percentiles,
and the trace of one retried and one dead-lettered order as trees (the spans the node
exports; set OTEL_EXPORTER_OTLP_ENDPOINT to send them to a collector too).

Then a short chaos run (``--no-chaos`` skips it): the harness drives the same pipeline
(examples/scenarios/orders_pipeline.toml) with the node in a child process, SIGKILLs the
Go and then the Rust worker under load, and prints its verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from rich.table import Table

import crosswire
import crosswire.transports
from crosswire import harness
from crosswire._observability.tree import record_traces, trace_tree
from examples.orders.app import GO_PRICING, RUST_FRAUD, Order, app, ledger

ROOT = Path(__file__).resolve().parents[2]
COUNTRIES = ["DE", "FR", "US", "BR", "JP"]


def make_order(i: int) -> Order:
    qty = 0 if i % 50 == 49 else 1 + i % 5  # every 50th order is impossible
    return Order(
        order_id=i,
        customer=f"customer-{i % 17}",
        sku=f"SKU-{i % 9:03d}",
        qty=qty,
        unit_price_cents=499 + (i * 37) % 20000,
        country=COUNTRIES[i % len(COUNTRIES)],
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="how many orders to submit (default 200)")
    parser.add_argument("--memory", action="store_true", help="memory transport instead of JetStream")
    parser.add_argument("--no-trace", action="store_true", help="do not trace (and show no trace trees)")
    parser.add_argument("--no-chaos", action="store_true", help="skip the chaos run at the end")
    args = parser.parse_args()
    recorder = None if args.no_trace else record_traces("orders-demo")
    traces: dict[int, str] = {}
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    console = Console(width=None if sys.stdout.isatty() else 110)
    data_dir = tempfile.mkdtemp(prefix="crosswire-demo-")
    transport: crosswire.transports.Transport = (
        crosswire.MemoryTransport() if args.memory else crosswire.JetStreamTransport(data_dir=data_dir)
    )
    where = "memory transport" if args.memory else f"embedded JetStream (nats-server, data in {data_dir})"
    console.print(f"[bold]crosswire demo[/]: {args.orders} orders through Python, Go and Rust on {where}")
    try:
        async with crosswire.Node(app, transport) as node:
            console.print("bindings: " + ", ".join(f"{b.name} ({b.runtime})" for b in node.bindings))
            t0 = time.perf_counter()
            for i in range(args.orders):
                ev = await node.submit("order.created", make_order(i), key=f"order-{i}", correlation_id=f"checkout-{i}")
                if ev.traceparent and i in (3, 49):  # 3: Rust fails its first attempt; 49: no quantity
                    traces[i] = ev.traceparent[3:35]
            await node.wait_idle(120)
            elapsed = time.perf_counter() - t0
            stats = node.statistics()
            letters = await node.dead_letters.list()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    table = Table(title="per binding", title_justify="left")
    for column in ("binding", "runtime", "handled", "retries", "dead letters", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("binding", "runtime") else "right")
    by_runtime: dict[str, int] = {}
    for binding in node.bindings:
        s = stats.bindings[binding.name]
        by_runtime[binding.runtime] = by_runtime.get(binding.runtime, 0) + s.handled
        table.add_row(
            binding.name,
            binding.runtime,
            str(s.handled),
            str(s.retried),
            str(s.dead_lettered),
            f"{binding.latency_quantile(0.5) * 1000:.2f}",
            f"{binding.latency_quantile(0.95) * 1000:.2f}",
            f"{binding.latency_quantile(0.99) * 1000:.2f}",
        )
    console.print(table)
    per_runtime = ", ".join(f"{k} {v}" for k, v in sorted(by_runtime.items()))
    console.print(f"events handled per runtime: {per_runtime}")
    console.print(f"dead letters: {len(letters)}")
    for letter in letters[:5]:
        error = letter.error
        console.print(f"  {letter.id}  ({error.code.value}, {error.runtime}) {error.message}")
    revenue = sum(p.total_cents for p in ledger.values())
    console.print(f"ledger: {len(ledger)} orders priced by Go, total {revenue / 100:,.2f}")
    rate = args.orders / elapsed
    console.print(f"{args.orders} orders in {elapsed:.2f}s ({rate:,.0f} orders/s end to end)")
    expected_bad = sum(1 for i in range(args.orders) if i % 50 == 49)
    ok = len(ledger) == args.orders - expected_bad and len(letters) == expected_bad
    console.print("[green]every order ended handled or dead-lettered[/]" if ok else "[red]MISMATCH[/]")
    if recorder is not None:
        await asyncio.sleep(0.2)  # the last spans of the pipeline end after wait_idle
        for i, trace_id in sorted(traces.items()):
            console.print(trace_tree(recorder.trace(trace_id), title=f"order {i}: trace"))
    if not args.no_chaos:
        ok = await chaos(console) and ok
    return 0 if ok else 1


async def chaos(console: Console) -> bool:
    """The shipped orders-pipeline scenario, its verdicts printed."""
    scenario = harness.load(ROOT / "examples" / "scenarios" / "orders_pipeline.toml")
    kills = ", ".join(f"{f.worker} at {f.at:g} s" for f in scenario.faults if isinstance(f, harness.WorkerFault))
    console.print(
        f"\n[bold]chaos[/]: {scenario.description} (memory transport, node in a child process, "
        f"{scenario.duration:g} s of traffic; SIGKILL {kills})"
    )
    with contextlib.chdir(ROOT):  # the node process imports examples.orders.app
        result = await harness.run(scenario)
    fates = result.fates
    follow = fates["follow_ups"]
    node = result.report["node_series"]
    restarts = ", ".join(f"{w} {runs[-1]}" for w, runs in node["worker_restarts"].items() if runs)
    console.print(
        f"offered {fates['offered']} orders: handled {fates['handled']}, dead-lettered {fates['dead_lettered']}, "
        f"lost {fates['lost']}; follow-ups handled {follow['handled']}, lost {follow['lost']}; "
        f"worker restarts: {restarts}; attempts retried by the node: {node['retried'][-1] if node['retried'] else 0}; "
        f"p99 {result.report['latency_ms']['p99']} ms"
    )
    table = Table(title="verdicts", title_justify="left")
    for column in ("verdict", "expected", "actual", ""):
        table.add_column(column)
    for v in result.verdicts:
        table.add_row(v.name, v.expected, v.actual, "[green]ok[/]" if v.ok else "[red]FAILED[/]")
    console.print(table)
    return result.ok


def binaries_missing() -> list[str]:
    return [binary for binary in (GO_PRICING, RUST_FRAUD) if not Path(binary).exists()]


if __name__ == "__main__":
    if missing := binaries_missing():
        print(f"missing worker binaries {missing}: run `make demo` (it builds them)", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main()))
