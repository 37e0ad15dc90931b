"""Worker metrics in the Prometheus exposition, and the Grafana dashboard's names."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import crosswire
from crosswire import Event

HERE = Path(__file__).parent
DASHBOARD = HERE.parents[1] / "docs" / "grafana-dashboard.json"


def scrape(node: crosswire.Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(crosswire.metrics_registry(node)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _app() -> crosswire.App:
    app = crosswire.App("wm")
    app.worker(
        "pyobs",
        command=[sys.executable, str(HERE / "py_worker.py")],
        timeout=5,
        retry=crosswire.Retry(max_attempts=3, initial=0.01, jitter=0.0),
        restart_backoff_initial=0.05,
    )

    @app.handler("obs.done")
    async def finish(event: Event[bytes]) -> None:
        pass

    return app


async def test_worker_latency_credit_heartbeat_and_restarts() -> None:
    async with crosswire.Node(_app()) as node:
        for _ in range(3):
            await node.submit("obs.work", b"")
        await node.wait_idle(20)
        got = scrape(node)
        w = (("node", "wm"), ("worker", "pyobs"))
        # 3 events, each failing once in the worker then succeeding: 6 results
        assert got[("crosswire_worker_handler_latency_seconds_count", w)] == 6
        assert 0 < got[("crosswire_worker_handler_latency_seconds_sum", w)] < 5
        assert got[("crosswire_worker_in_flight", w)] == 0
        assert got[("crosswire_worker_max_in_flight", w)] == 4
        assert got[("crosswire_worker_up", w)] == 1
        assert 0 <= got[("crosswire_worker_heartbeat_age_seconds", w)] < 3
        assert got[("crosswire_worker_restarts_total", w)] == 0

        pid = node.statistics().workers["pyobs"].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while node.statistics().workers["pyobs"].restarts < 1 or node.statistics().workers["pyobs"].state != "ready":
            assert time.monotonic() < deadline, node.statistics().workers["pyobs"]
            await asyncio.sleep(0.05)
        got = scrape(node)
        assert got[("crosswire_worker_restarts_total", w)] == 1
        assert got[("crosswire_worker_up", w)] == 1


def _dashboard_metric_names() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"\bcrosswire_[a-z_]+\b", expr))
    for var in board.get("templating", {}).get("list", []):
        names |= set(re.findall(r"\bcrosswire_[a-z_]+\b", json.dumps(var.get("query", ""))))
    return names


async def test_the_grafana_dashboard_uses_exactly_the_exported_names() -> None:
    app = _app()

    @app.handler("obs.fail", breaker=True, retry=crosswire.Retry(max_attempts=1))
    async def fail(event: Event[bytes]) -> None:
        raise crosswire.Reject("no")

    async with crosswire.Node(app) as node:
        await node.submit("obs.work", b"")
        await node.submit("obs.fail", b"")
        await node.wait_idle(20)
        exported = {name for name, _ in scrape(node)}
    used = _dashboard_metric_names()
    unknown = sorted(used - exported)
    assert not unknown, f"the dashboard queries metrics the node does not export: {unknown}"
    # and it shows what the node exports (families, by their base names)
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exported}
    shown = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in used}
    assert not sorted(families - shown), f"exported but not on the dashboard: {sorted(families - shown)}"
