"""The shipped scenarios (examples/scenarios/) against the real node in a child process.

Short versions run in ``make test``; the soak versions (``make soak``) run each one
five times longer: more waves, more restarts, more kills.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crosswire.harness import Scenario, load, run

SCENARIOS = Path(__file__).parents[2] / "examples" / "scenarios"
ROOT = Path(__file__).parents[2]
GO = Path(os.environ.get("CROSSWIRE_GO_TESTWORKER", ROOT / "sdk/go/bin/crosswire-testworker"))
RUST = Path(os.environ.get("CROSSWIRE_RUST_TESTWORKER", ROOT / "sdk/rust/target/release/examples/testworker"))

needs_workers = pytest.mark.skipif(
    not (GO.exists() and RUST.exists()), reason="Go/Rust test workers not built (make build-go build-rust)"
)
needs_demo = pytest.mark.skipif(
    not (
        (ROOT / "examples/orders/go-pricing/bin/go-pricing").exists()
        and (ROOT / "sdk/rust/target/release/rust-fraud").exists()
    ),
    reason="the demo's Go and Rust workers are not built (make build)",
)

CASES = [
    pytest.param("poison_burst", id="poison-burst"),
    pytest.param("rolling_restart", id="rolling-restart", marks=pytest.mark.nats),
    pytest.param("worker_kill_loop", id="worker-kill-loop", marks=[pytest.mark.e2e, needs_workers]),
    pytest.param("broker_restart", id="broker-restart", marks=pytest.mark.nats),
    pytest.param("overload_large", id="overload-large"),
    pytest.param("hung_worker", id="hung-worker"),
    pytest.param("waveform_day", id="waveform-day", marks=pytest.mark.nats),
    pytest.param("orders_pipeline", id="orders-pipeline", marks=[pytest.mark.e2e, needs_demo]),
]
# a local 3-server cluster takes ~20 s to form, fail over and settle: soak only
SOAK_ONLY = [pytest.param("cluster_server_kill", id="cluster-server-kill", marks=pytest.mark.nats)]


async def _check(scenario: Scenario) -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)  # the apps are examples.scenarios.apps:<name>
    try:
        result = await run(scenario)
    finally:
        os.chdir(cwd)
    failed = [f"{v.name}: {v.actual} (expected {v.expected}) {v.detail[:3]}" for v in result.verdicts if not v.ok]
    assert not failed, f"{scenario.name}: {failed}; fates {result.fates}; notes {result.report['notes']}"
    assert result.fates["offered"] > 0 and result.fates["lost"] == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", CASES)
async def test_scenario_short(name: str) -> None:
    await _check(load(SCENARIOS / f"{name}.toml"))


# five times longer: the hung worker hangs 16 events x 3 attempts; each time it is
# declared hung it is replaced without a gap, so healthy events keep their deadlines
SOAK_CASES = CASES


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", SOAK_CASES + SOAK_ONLY)
async def test_scenario_soak(name: str) -> None:
    # the poison burst repeats (five bursts of 4,000) rather than growing to one of 20,000
    await _check(load(SCENARIOS / f"{name}.toml").scaled(5, shapes=name != "poison_burst"))


@pytest.mark.soak
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SOAK_ONLY)
async def test_scenario_soak_short(name: str) -> None:
    await _check(load(SCENARIOS / f"{name}.toml"))
