"""The series sampled while a scenario runs: one sample of the node's statistics per
report it sends, and the snapshot the live views show."""

from __future__ import annotations

import time
from typing import Any

from .accounting import Ledger, percentile

__all__ = ["snapshot", "stats_sample"]


def stats_sample(msg: dict[str, Any], *, t0: float, generation: int) -> tuple[int, dict[str, Any]]:
    """The node's resident set size and one sample from its ``stats`` message."""
    s = msg["s"]
    rss = int(msg.get("rss") or 0)
    bindings = s.get("bindings", {})
    queue = sum(int((b.get("queue") or {}).get("queued", 0)) for b in bindings.values())
    running = sum(int((b.get("queue") or {}).get("running", 0)) for b in bindings.values())
    workers = s.get("workers", {}) or {}
    transport = s.get("transport") or {}
    # memory: each group's pending/held back/delayed; JetStream: pulled, not yet dispatched
    backlog = sum(
        int(g.get(k) or 0)
        for g in (transport.get("groups") or [])
        if isinstance(g, dict)
        for k in ("pending", "held_back", "delayed")
    ) + sum(int(sub.get("queued") or 0) for sub in (transport.get("subscriptions") or []) if isinstance(sub, dict))
    return rss, {
        "t": round(float(msg["at"]) - t0, 3),
        "node": generation,
        "queued": queue,
        "running": running,
        "backlog": backlog,
        "pending": int(s.get("pending", 0)),
        "retried": sum(int(b.get("retried", 0)) for b in bindings.values()),
        "dead_lettered": sum(int(b.get("dead_lettered", 0)) for b in bindings.values()),
        "breakers": {n: (b.get("breaker") or {}).get("state") for n, b in bindings.items() if b.get("breaker")},
        "credit": {n: w.get("credit") for n, w in workers.items()},
        "worker_in_flight": {n: w.get("in_flight") for n, w in workers.items()},
        "worker_restarts": {n: w.get("restarts") for n, w in workers.items()},
        "rss_mb": round(rss / 2**20, 1),
    }


def snapshot(
    ledger: Ledger,
    *,
    phase: str,
    t0: float,
    duration: float,
    samples: list[dict[str, Any]],
    generation: int,
    node_alive: bool,
    markers: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the live views show: the last full bin's rates and latencies, the last sample."""
    led = ledger
    now_rel = time.time() - t0 if t0 else 0.0
    b = max(0, int(now_rel / led.bin) - 1)
    offered = led.offered_bins[b] / led.bin if b < len(led.offered_bins) else 0.0
    handled = led.handled_bins[b] / led.bin if b < len(led.handled_bins) else 0.0
    lat = led.latency_bins[b] if b < len(led.latency_bins) else []
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    sample = samples[-1] if samples else {}
    return {
        "phase": phase,
        "t": now_rel,
        "duration": duration,
        "offered_total": len(led.offers),
        "handled_total": led.handled_pairs,
        "offered_per_s": offered,
        "handled_per_s": handled,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "queued": sample.get("queued", 0),
        "running": sample.get("running", 0),
        "backlog": sample.get("backlog", 0),
        "retried": sample.get("retried", 0),
        "dead_lettered": sample.get("dead_lettered", 0),
        "breakers": sample.get("breakers", {}),
        "credit": sample.get("credit", {}),
        "restarts": sample.get("worker_restarts", {}),
        "rss_mb": sample.get("rss_mb", 0.0),
        "node": generation,
        "node_alive": node_alive,
        "faults": [m["label"] for m in markers if m["t"] <= now_rel <= max(m["end"], m["t"] + 1)],
        "unresolved": led.unresolved(),
    }
