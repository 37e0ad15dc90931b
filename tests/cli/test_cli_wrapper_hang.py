"""A worker command that is a wrapper script whose child hangs (never connects, ignores
SIGTERM, holds the output pipes) must not hang ``crosswire run``: at ``ready_timeout``
the node stops the whole process group, says why, and exits 3 (could not start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]

WRAPPER = """#!/bin/sh
# what a real wrapper does: set things up, then start the real program (here: one
# that never connects to CROSSWIRE_SOCKET and ignores SIGTERM)
trap '' TERM
"$PYTHON" -c '
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write(str(os.getpid()))
print("child up, never connecting", flush=True)
while True:
    time.sleep(1)
' "$PID_FILE"
"""

APP = """
import os
import crosswire

app = crosswire.App("hangs")
app.worker("wrapped", command=["sh", os.environ["WRAPPER"]], ready_timeout=2)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, it only waits for its parent to reap it
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ready_timeout_stops_a_wrapper_and_its_hanging_child(tmp_path: Path) -> None:
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(WRAPPER)
    (tmp_path / "hangapp.py").write_text(APP)
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "WRAPPER": str(wrapper), "PYTHON": sys.executable, "PID_FILE": str(pid_file)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [*CROSSWIRE, "run", "hangapp:app", "--memory"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    child_pid: int | None = None
    try:
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            raise AssertionError(f"crosswire run hung past ready_timeout=2 s; output:\n{output}") from None
        took = time.monotonic() - started
        child_pid = int(pid_file.read_text()) if pid_file.exists() else None
        assert child_pid is not None, f"the wrapper's child never started; output:\n{output}"
        assert proc.returncode == 3, f"exit {proc.returncode}; output:\n{output}"
        assert "worker 'wrapped' was not ready within 2 s" in output, output
        assert took < 20, f"crosswire run took {took:.1f} s to give up"
        deadline = time.monotonic() + 5
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid), "the wrapper's child outlived crosswire run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if child_pid is not None and _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)
