"""The examples a newcomer runs first must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_and_reports_what_happened() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples/quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "reserved [0, 1, 2, 3, 4, 5, 6, 8, 9]"
    assert lines[1] == "handled 9, retried 4, dead-lettered 1"
    assert "rejected: order 7: quantity must be positive" in lines[2]
