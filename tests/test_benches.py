"""Every benchmark still runs and prints its one JSON line with a figure for each
contender (tiny runs: this checks the benches work, not how fast anything is)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _last_json(*args: str, timeout: float = 240) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _positive(figures: dict[str, Any], *names: str) -> None:
    for name in names:
        assert isinstance(figures[name], (int, float)) and figures[name] > 0, (name, figures)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_dispatch_bench(loop: str) -> None:
    out = _last_json("bench/dispatch.py", "--events", "400", "--rounds", "1", "--loop", loop)
    assert out["loop"] == loop
    _positive(out["events_per_s"], "crosswire", "baseline_queue", "faststream", "fused_ceiling")
    _positive(out["ratios"], "vs_baseline_queue", "vs_faststream", "vs_fused_ceiling")


@pytest.mark.nats
@pytest.mark.timeout(300)
def test_jetstream_bench_reports_every_contender_and_phase() -> None:
    out = _last_json("bench/jetstream.py", "--events", "300", "--rounds", "1")
    contenders = (
        "crosswire",
        "crosswire_kv_dedup",
        "crosswire_no_dedup",
        "crosswire_lean",
        "raw_nats_py",
        "faststream",
    )
    for phase in ("e2e", "consume"):
        _positive(out["events_per_s"][phase], *contenders)
    _positive(out["ratios"], "vs_raw_nats_py", "vs_faststream", "consume_vs_raw_nats_py", "kv_dedup_vs_default")


@pytest.mark.timeout(120)
def test_harness_bench() -> None:
    out = _last_json("bench/harness.py", "--events", "5000")
    _positive(out["harness"], "events_per_s")
    e2e = out["end_to_end_memory"]
    assert e2e["lost"] == 0 and e2e["handled"] == e2e["offered"] > 0, e2e
