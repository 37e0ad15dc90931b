"""``crosswire top``: a live view of a running node, read from its metrics endpoint.

::

    crosswire run myapp:app --metrics-port 9464
    crosswire top                       # http://127.0.0.1:9464/metrics, every second
    crosswire top --url http://host:9464/metrics --once

Per binding: events/s, p50/p99 handler latency (over the last interval, or since
start before there are two scrapes), retries, dead letters, breaker state, queue
depth. Per worker: credit in use, restarts, deliveries lost, heartbeat age, p50/p99 of
the handler time its results report. Plain text when stdout is not a terminal, so it
works over SSH and in pipes; ``--once`` prints one view and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .common import UserError

__all__ = ["Snapshot", "add_parser", "parse", "render", "top_command"]

Labels = tuple[tuple[str, str], ...]
_BREAKER = {0: "closed", 1: "half-open", 2: "open"}


def add_parser(sub: Any) -> None:
    top = sub.add_parser(
        "top",
        help="live view of a running node (its --metrics-port)",
        description="A live view of a running node's bindings and workers, from its Prometheus endpoint.",
    )
    top.add_argument(
        "--port", type=int, default=9464, help="the node's --metrics-port on 127.0.0.1 (default: %(default)s)"
    )
    top.add_argument("--url", default=None, help="the metrics URL (default: http://127.0.0.1:PORT/metrics)")
    top.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between scrapes (default: %(default)s)"
    )
    top.add_argument("--once", action="store_true", help="print one view (two scrapes, --interval apart) and exit")
    top.set_defaults(handler=top_command)


@dataclass
class Snapshot:
    """One scrape: every sample by name and labels, and when it was taken."""

    at: float
    samples: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))

    def get(self, name: str, labels: Labels, default: float = 0.0) -> float:
        return self.samples.get(name, {}).get(labels, default)

    def series(self, name: str) -> dict[Labels, float]:
        return self.samples.get(name, {})


def parse(text: str, at: float) -> Snapshot:
    from prometheus_client.parser import text_string_to_metric_families

    snap = Snapshot(at)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            snap.samples[s.name][tuple(sorted(s.labels.items()))] = s.value
    return snap


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot read metrics from {url}: {exc}") from None


def _without(labels: Labels, *names: str) -> Labels:
    return tuple((k, v) for k, v in labels if k not in names)


def _with(labels: Labels, key: str, value: str) -> Labels:
    return tuple(sorted((*labels, (key, value))))


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            span = count - below
            return lower + (bound - lower) * ((rank - below) / span if span else 0.0)
        lower, below = bound, count
    return lower


def _histograms(now: Snapshot, before: Snapshot | None, name: str, key: str) -> dict[Labels, list[tuple[float, float]]]:
    """Per series (without ``le``): cumulative buckets over the interval when it saw
    observations, else since start."""
    out: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for labels, value in now.series(f"{name}_bucket").items():
        le = dict(labels)["le"]
        base = _without(labels, "le")
        previous = before.get(f"{name}_bucket", labels) if before is not None else 0.0
        out[base].append((float(le), value - previous))
    for base, pairs in list(out.items()):
        if not any(count > 0 for _, count in pairs):  # nothing in the interval: since start
            out[base] = [
                (float(dict(lb)["le"]), v)
                for lb, v in now.series(f"{name}_bucket").items()
                if _without(lb, "le") == base
            ]
    return out


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def render(now: Snapshot, before: Snapshot | None) -> Any:
    """The view of one scrape (rates from ``before``), as rich renderables."""
    from rich.console import Group
    from rich.table import Table

    dt = (now.at - before.at) if before is not None else 0.0
    handled = now.series("crosswire_handled_total")
    latency = _histograms(now, before, "crosswire_handler_latency_seconds", "binding")
    bindings = sorted({_without(labels, "outcome") for labels in handled}, key=lambda lb: dict(lb).get("binding", ""))
    table = Table(title="bindings", title_justify="left", expand=False)
    for column in (
        "binding",
        "runtime",
        "ev/s",
        "handled",
        "p50 ms",
        "p99 ms",
        "retries",
        "dead letters",
        "breaker",
        "queue",
    ):
        table.add_column(column, justify="left" if column in ("binding", "runtime", "breaker") else "right")
    for labels in bindings:
        d = dict(labels)
        ok = now.get("crosswire_handled_total", _with(labels, "outcome", "ok"))
        dead = now.get("crosswire_handled_total", _with(labels, "outcome", "dead_letter"))
        keyed = tuple(sorted(labels))
        if before is not None and dt > 0:
            done_before = before.get("crosswire_handled_total", _with(labels, "outcome", "ok")) + before.get(
                "crosswire_handled_total", _with(labels, "outcome", "dead_letter")
            )
            rate = f"{max(0.0, ok + dead - done_before) / dt:,.1f}"
        else:
            rate = "-"
        hist = latency.get(keyed, [])
        breaker = now.series("crosswire_breaker_state").get(keyed)
        table.add_row(
            d.get("binding", "?"),
            d.get("runtime", "?"),
            rate,
            f"{ok:,.0f}",
            _ms(_quantile(hist, 0.5)),
            _ms(_quantile(hist, 0.99)),
            f"{now.get('crosswire_retries_total', keyed):,.0f}",
            f"{dead:,.0f}",
            _BREAKER.get(int(breaker), "?") if breaker is not None else "-",
            f"{now.get('crosswire_queue_depth', keyed):,.0f}",
        )
    parts: list[Any] = [table]
    workers = sorted(now.series("crosswire_worker_up"), key=lambda lb: dict(lb).get("worker", ""))
    if workers:
        wtable = Table(title="workers", title_justify="left", expand=False)
        for column in ("worker", "up", "credit", "waiting", "restarts", "lost", "heartbeat s", "p50 ms", "p99 ms"):
            wtable.add_column(column, justify="left" if column == "worker" else "right")
        wlatency = _histograms(now, before, "crosswire_worker_handler_latency_seconds", "worker")
        for labels in workers:
            age = now.series("crosswire_worker_heartbeat_age_seconds").get(labels)
            hist = wlatency.get(labels, [])
            wtable.add_row(
                dict(labels).get("worker", "?"),
                "yes" if now.get("crosswire_worker_up", labels) else "no",
                f"{now.get('crosswire_worker_in_flight', labels):.0f}/"
                f"{now.get('crosswire_worker_max_in_flight', labels):.0f}",
                f"{now.get('crosswire_worker_waiting', labels):.0f}",
                f"{now.get('crosswire_worker_restarts_total', labels):.0f}",
                f"{now.get('crosswire_worker_lost_total', labels):.0f}",
                "-" if age is None else f"{age:.1f}",
                _ms(_quantile(hist, 0.5)),
                _ms(_quantile(hist, 0.99)),
            )
        parts.append(wtable)
    submitted = sum(now.series("crosswire_submitted_total").values())
    pending = sum(now.series("crosswire_pending").values())
    nodes = sorted({dict(lb).get("node", "?") for lb in now.series("crosswire_submitted_total")})
    clock = time.strftime("%H:%M:%S")
    header = f"node {', '.join(nodes) or '?'}  submitted {submitted:,.0f}  pending {pending:,.0f}  {clock}"
    return Group(header, *parts)


async def top_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    url = args.url or f"http://127.0.0.1:{args.port}/metrics"
    interval = max(0.1, args.interval)
    console = Console()

    async def scrape() -> Snapshot:
        text = await asyncio.to_thread(_fetch, url)
        return parse(text, time.monotonic())

    before = await scrape()
    if args.once:
        await asyncio.sleep(interval)
        console.print(render(await scrape(), before))
        return 0
    if not console.is_terminal:  # a pipe: one plain view per interval
        while True:
            await asyncio.sleep(interval)
            now = await scrape()
            console.print(render(now, before))
            before = now
    with Live(render(before, None), console=console, auto_refresh=False, screen=False) as live:
        while True:
            await asyncio.sleep(interval)
            now = await scrape()
            live.update(render(now, before), refresh=True)
            before = now
