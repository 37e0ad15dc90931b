"""The crosswire command, run as a user runs it: real processes, a real embedded nats-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]

pytestmark = pytest.mark.nats


def cli(*args: str, data_dir: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run(
        [*CROSSWIRE, *args, *extra], cwd=HERE, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


class Running:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen; log:\n{self.log.read_text()}")

    def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def run_node(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Running:
        log = tmp_path / f"run-{len(procs)}.log"
        env = {**os.environ, "CLI_TEST_OUT": str(tmp_path / "out.txt")}
        with open(log, "w") as f:
            proc = subprocess.Popen(
                [*CROSSWIRE, "run", "cli_app:app", *args],
                cwd=HERE,
                stdout=f,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        procs.append(proc)
        return Running(proc, log)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_help_describes_every_command() -> None:
    top = cli("--help")
    assert top.returncode == 0
    for command in ("run", "submit", "dlq"):
        assert command in top.stdout
    run = cli("run", "--help")
    assert run.returncode == 0
    assert "--nats" in run.stdout and "--drain-timeout" in run.stdout and "--memory" in run.stdout
    assert cli("dlq", "replay", "--help").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no_such_module:app"], "cannot import module 'no_such_module'"),
        (["run", "cli_app:nothing"], "has no attribute 'nothing'"),
        (["run", "cli_app:OUT"], "not a crosswire.App"),
        (["submit", "bad type", "--data", "{}"], "contains whitespace"),
        (["submit", "cli.job", "--data", "{nope"], "--data is not valid JSON"),
        (["dlq", "replay"], "replay needs a LETTER_ID"),
    ],
)
def test_user_mistakes_are_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = cli(*args, data_dir=tmp_path)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = cli("submit", "cli.job", "--data", "{}", "--nats", "nats://127.0.0.1:1", timeout=60)
    assert result.returncode == 3
    assert "cannot connect to NATS" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - t0 < 30


def test_run_submit_and_dead_letters_end_to_end(run_node: object, tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = run_node("--data-dir", str(data))  # type: ignore[operator]
    node.wait_for("ready on nats://127.0.0.1:")
    assert (data / "server.json").exists()
    ids = []
    for n in range(3):
        result = cli("submit", "cli.job", "--data", json.dumps({"n": n}), "--key", "k", data_dir=data)
        assert result.returncode == 0, result.stderr
        ids.append(result.stdout.strip())
    bad = cli("submit", "cli.job", "--data", json.dumps({"n": 99, "bad": True}), data_dir=data)
    assert bad.returncode == 0, bad.stderr
    out = tmp_path / "out.txt"
    deadline = time.monotonic() + 20
    letters: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        listed = cli("dlq", "list", "--json", data_dir=data)
        letters = [json.loads(line) for line in listed.stdout.splitlines()]
        if letters and out.exists() and len(out.read_text().split()) == 3:
            break
        time.sleep(0.2)
    assert out.read_text().split() == ["0", "1", "2"]  # one key: in submission order
    assert len(letters) == 1
    letter = letters[0]
    assert letter["code"] == "rejected" and letter["event_id"] == bad.stdout.strip()
    shown = json.loads(cli("dlq", "show", str(letter["id"]), data_dir=data).stdout)
    assert shown["event"]["data"] == {"n": 99, "bad": True}
    assert shown["attempt_history"][0]["error"]["message"] == "job 99 is bad"
    replay = cli("dlq", "replay", str(letter["id"]), data_dir=data)
    assert replay.returncode == 0 and "replayed" in replay.stdout
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        again = json.loads(cli("dlq", "list", "--json", data_dir=data).stdout.splitlines()[0])
        if again["replays"] == 1 and again["status"] == "dead":  # replayed, and rejected again
            break
        time.sleep(0.2)
    assert again["replays"] == 1
    purge = cli("dlq", "purge", "--all", data_dir=data)
    assert purge.stdout.strip() == "purged 1"
    assert node.stop() == 0
    assert "stopped:" in node.log.read_text()
    assert not (data / "server.json").exists()


def test_submitted_events_wait_in_the_stream_until_a_node_runs(run_node: object, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = cli("submit", "cli.job", "--data", json.dumps({"n": 7}), data_dir=data)  # no node running
    assert result.returncode == 0, result.stderr
    node = run_node("--data-dir", str(data))  # type: ignore[operator]
    node.wait_for("ready on")
    out = tmp_path / "out.txt"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not out.exists():
        time.sleep(0.1)
    assert out.read_text().split() == ["7"]
    assert node.stop() == 0


def test_missed_drain_deadline_exits_non_zero(run_node: object, tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = run_node("--data-dir", str(data), "--drain-timeout", "0.5")  # type: ignore[operator]
    node.wait_for("ready on")
    assert cli("submit", "cli.slow", "--data", "{}", data_dir=data).returncode == 0
    time.sleep(1.0)  # let the slow handler start
    assert node.stop() == 1
    assert "drain deadline of 0.5s missed" in node.log.read_text()


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CROSSWIRE, "--log-json", "run", "cli_app:app", "--memory"],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        record = json.loads(first)
        assert record["level"] == "info" and record["logger"] == "crosswire.cli"
        assert "ready on memory" in record["message"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0
    for line in rest.splitlines():
        json.loads(line)


def test_submit_to_a_memory_node_says_it_cannot_reach_it(run_node: Callable[..., Running], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = run_node("--memory", "--data-dir", str(data_dir))
    node.wait_for("ready on memory")
    out = cli("submit", "order.created", "--data", '{"order_id": 1}', data_dir=data_dir)
    assert out.returncode == 3, out
    assert "memory transport" in out.stderr and out.stdout == ""
    assert not (data_dir / "jetstream").exists()  # no second, unread store was started
    assert node.stop() == 0
    assert not (data_dir / "server.json").exists()
