"""`crosswire top --once` against a real `crosswire run --metrics-port` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]

pytestmark = pytest.mark.nats


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_top_once_shows_bindings_and_workers(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        node = subprocess.Popen(
            [*CROSSWIRE, "run", "top_app:app", "--metrics-port", str(port), "--data-dir", str(tmp_path)],
            cwd=HERE,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while "metrics on" not in log.read_text():
            assert node.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        for event_type in ("obs.work", "obs.work", "obs.bad"):
            sent = subprocess.run(
                [*CROSSWIRE, "submit", event_type, "--data", "{}", "--data-dir", str(tmp_path)],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 30
        while True:
            top = subprocess.run(
                [*CROSSWIRE, "top", "--port", str(port), "--once", "--interval", "0.2"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**env, "COLUMNS": "160"},
            )
            assert top.returncode == 0, top.stderr
            rows = {line.split()[1]: line for line in top.stdout.splitlines() if line.startswith("│")}
            if "pyobs:obs.work" in rows and rows["pyobs:obs.work"].split("│")[4].strip() == "2":
                break
            assert time.monotonic() < deadline, top.stdout
            time.sleep(0.2)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
    out = top.stdout
    assert "node topnode" in out
    cells = {name: [c.strip() for c in line.split("│")[1:-1]] for name, line in rows.items()}
    # binding, runtime, ev/s, handled, p50, p99, retries, dead letters, breaker, queue
    work = cells["pyobs:obs.work"]
    assert work[1] == "python" and work[3] == "2" and work[6] == "2" and work[8] == "closed"
    assert float(work[4]) >= 0 and float(work[5]) >= float(work[4])
    assert cells["bad"][7] == "1"  # one dead letter
    assert cells["done"][3] == "2"  # the follow-ups the worker emitted
    # worker, up, credit, waiting, restarts, lost, heartbeat s, p50, p99
    worker = cells["pyobs"]
    assert worker[1] == "yes" and worker[2] == "0/4" and worker[4] == "0" and float(worker[6]) < 3


def test_top_says_when_there_is_no_node() -> None:
    top = subprocess.run(
        [*CROSSWIRE, "top", "--port", str(_free_port()), "--once"], capture_output=True, text=True, timeout=60
    )
    assert top.returncode == 3 and "cannot read metrics" in top.stderr
