"""The harness must not be the bottleneck: how many events/s it offers and accounts for.

Two measurements, one JSON line:

- ``harness``: the harness's own work per event, as fast as it goes, with no node
  in the way — plan the arrivals (seeded), draw keys and payloads, build and encode
  each event as it is handed to a memory-transport node, enter it in the ledger,
  then read the handler-run records (a start and an end per event) back in the
  node's run-file format (JSON lines) and account them, and finally settle every id's fate (``lost == 0``
  checked over every id). Goal: >= 50,000 events/s.
- ``end_to_end``: a real run (``crosswire.harness.run``) of a no-op handler on the
  memory transport, the node in its child process, offered 60,000 events/s for a
  few seconds: offered and handled rates and the fates. Here the node's own dispatch
  rate (``bench/dispatch.py``) is the ceiling, not the harness.

    python bench/harness.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crosswire  # noqa: E402
from crosswire import encode_event  # noqa: E402
from crosswire.harness import Constant, Keys, Ledger, Scenario, Traffic, TrafficPlan, Verdicts, run  # noqa: E402
from crosswire.harness.traffic import POISON_EXTENSION  # noqa: E402


class Payload(msgspec.Struct):
    order_id: int
    sku: str
    qty: int
    note: str


app = crosswire.App("bench-harness")


@app.handler("bench.event", timeout=None, breaker=False, dedup=False, concurrency=64)
async def noop(event: crosswire.Event[Payload]) -> None:
    return None


def harness_only(events: int) -> dict[str, float | int]:
    rate = 1_000_000.0
    scenario = Scenario(
        duration=events / rate,
        seed=1,
        traffic=[Traffic(type="bench.event", shape=Constant(rate=rate), keys=Keys(count=1000), poison=0.01)],
    )
    enc = msgspec.json.Encoder()
    run_dec = msgspec.json.Decoder(tuple[str, str, int, float, float, str, bool, str])
    t0 = time.perf_counter()
    plan = TrafficPlan(scenario, lambda _t: Payload)
    ledger = Ledger(t0=time.time(), bin_seconds=1.0)
    ledger.routes["bench.event"] = ["noop"]
    ledger.max_attempts["noop"] = 3
    offers = plan.all()
    ledger.offer(offers)
    wire = 0
    lines: list[bytes] = []
    now = time.time()
    for o in offers:
        event = crosswire.Event.new(
            o.type,
            o.data,
            source="/bench",
            id=o.id,
            datacontenttype=o.content_type,
            key=o.key,
            extensions={POISON_EXTENSION: o.poison} if o.poison else None,
        )
        wire += len(encode_event(event))
        lines.append(enc.encode((o.id, "noop", 1, now, 0.0, "^", False, "")))  # the run starts
        lines.append(enc.encode((o.id, "noop", 1, now, now, "", False, "")))  # and ends
    ledger.add_runs(run_dec.decode_lines(b"\n".join(lines) + b"\n"))
    fates = ledger.fates()
    seconds = time.perf_counter() - t0
    assert fates["handled"] == len(offers) and fates["lost"] == 0, fates
    return {"events": len(offers), "seconds": round(seconds, 3), "events_per_s": round(len(offers) / seconds)}


async def end_to_end(seconds: float, rate: float) -> dict[str, object]:
    scenario = Scenario(
        name="bench",
        duration=seconds,
        seed=2,
        traffic=[Traffic(type="bench.event", shape=Constant(rate=rate), keys=Keys(kind="none"))],
        verdicts=Verdicts(lost=0, settle_timeout=60),
        batch=1024,
        node={"max_pending": 200_000},
    )
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        t0 = time.perf_counter()
        result = await run(scenario, app="bench.harness:app", transport="memory")
        wall = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
    f = result.fates
    s = result.report["series"]
    busy = [x for x in s["handled_per_s"] if x > 0]
    return {
        "offered": f["offered"],
        "handled": f["handled"],
        "lost": f["lost"],
        "offered_per_s": round(f["offered"] / seconds),
        "handled_per_s_peak": round(max(busy) if busy else 0),
        "handled_per_s_mean": round(f["handled"] / max(1e-9, wall - 1.0)),
        "wall_seconds": round(wall, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--events", type=int, default=300_000)
    args = p.parse_args()
    events = 100_000 if args.quick else args.events
    rounds = [harness_only(events) for _ in range(1 if args.quick else 3)]
    best = sorted(rounds, key=lambda r: r["events_per_s"])[len(rounds) // 2]
    e2e = asyncio.run(end_to_end(2.0 if args.quick else 4.0, 60_000.0))
    print(
        json.dumps(
            {
                "bench": "harness",
                "harness": best,
                "end_to_end_memory": e2e,
                "goal_events_per_s": 50_000,
                "goal_met": best["events_per_s"] >= 50_000,
            }
        )
    )


if __name__ == "__main__":
    main()
