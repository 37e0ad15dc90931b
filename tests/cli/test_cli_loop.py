"""``crosswire run --loop auto|asyncio|uvloop``: the loop a real ``crosswire run`` process runs on."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop not installed (crosswire[fast])")


def run_until_ready(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, ready: str = "ready on memory"
) -> tuple[str, str]:
    """Start ``crosswire run loop_app:app ARGS``, wait for ``ready``, stop it with SIGTERM.

    :returns: the loop type the app's init hook saw, and the process's log.
    """
    out = tmp_path / "loop.txt"
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [*CROSSWIRE, "run", "loop_app:app", "--data-dir", str(tmp_path / "data"), *args],
            cwd=HERE,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "CLI_LOOP_OUT": str(out)},
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while ready not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.read_text(), log.read_text()


def hide_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import uvloop`` fails, as where it is not installed."""
    shadow = tmp_path / "no_uvloop" / "uvloop"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('uvloop is hidden by this test')\n")
    return {"PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}


@needs_uvloop
@pytest.mark.parametrize("choice", ["uvloop", "auto"])
def test_uvloop_runs_the_node_when_chosen_or_installed(tmp_path: Path, choice: str) -> None:
    loop_type, log = run_until_ready(tmp_path, "--memory", "--loop", choice)
    assert loop_type == "uvloop.Loop"
    assert "(uvloop event loop)" in log


@needs_uvloop
@pytest.mark.nats
def test_uvloop_runs_the_embedded_jetstream_server(tmp_path: Path) -> None:
    loop_type, log = run_until_ready(tmp_path, "--loop", "uvloop", ready="ready on nats://127.0.0.1:")
    assert loop_type == "uvloop.Loop"
    assert "(uvloop event loop)" in log


@needs_uvloop
def test_uvloop_spawns_workers_in_their_own_process_group() -> None:
    import uvloop

    from crosswire._workers.process import ChildProcess

    async def spawn() -> tuple[int, int]:
        child = await ChildProcess.spawn(["sleep", "30"], process_group=True)
        try:
            return child.pid, os.getpgid(child.pid)
        finally:
            await child.kill()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        pid, group = runner.run(spawn())
    assert group == pid != os.getpgid(0)


def test_asyncio_loop_when_asked(tmp_path: Path) -> None:
    loop_type, log = run_until_ready(tmp_path, "--memory", "--loop", "asyncio")
    assert loop_type.startswith("asyncio.") and "uvloop" not in loop_type
    assert "(asyncio event loop)" in log


def test_auto_falls_back_to_asyncio_without_uvloop(tmp_path: Path) -> None:
    loop_type, _ = run_until_ready(tmp_path, "--memory", env=hide_uvloop(tmp_path))  # no --loop: auto
    assert loop_type.startswith("asyncio.")


def test_uvloop_missing_is_one_clear_line_naming_the_extra(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CROSSWIRE, "run", "loop_app:app", "--memory", "--loop", "uvloop", "--data-dir", str(tmp_path / "data")],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **hide_uvloop(tmp_path), "CLI_LOOP_OUT": str(tmp_path / "loop.txt")},
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip() == "crosswire: --loop uvloop: uvloop is not installed (pip install 'crosswire[fast]')"
    assert not (tmp_path / "loop.txt").exists()  # refused before the node started


def test_unknown_loop_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CROSSWIRE, "run", "loop_app:app", "--loop", "trio"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "--loop: invalid choice: 'trio'" in result.stderr
