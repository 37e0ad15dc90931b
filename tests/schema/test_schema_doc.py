"""docs/schema.md's walkthrough runs as written: from a Python payload type to a running Go
worker built with the generated struct.

Every fenced block carries a marker comment before it: ``<!-- doc-test: file PATH -->``
(written to PATH in a fresh directory), ``<!-- doc-test: run -->`` (a shell step, run in
that directory with this checkout as ``$CROSSWIRE``), ``<!-- doc-test: output -->`` (what
the last step prints) or ``<!-- doc-test: fragment -->`` (shown for reading; a ```go
fragment must appear in the generated code). A block without a marker fails the test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

DOC = ROOT / "docs" / "schema.md"
BLOCK = re.compile(r"(?:<!-- doc-test: ([^>]+?) -->\n)?```([\w.]*)\n(.*?)\n```", re.S)


def _blocks() -> list[tuple[str | None, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(DOC.read_text())]


def test_every_block_is_marked() -> None:
    blocks = _blocks()
    assert len(blocks) >= 10
    for marker, _, body in blocks:
        assert marker is not None, f"a block of docs/schema.md without a doc-test marker:\n{body[:200]}"
        assert marker in ("run", "output", "fragment") or marker.startswith("file "), marker


@pytest.mark.e2e
def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    blocks = _blocks()
    for marker, _, body in blocks:
        if marker and marker.startswith("file "):
            path = tmp_path / marker.removeprefix("file ")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body + "\n")
    env = {
        **os.environ,
        "CROSSWIRE": str(ROOT),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env.pop("PYTHONPATH", None)
    printed = ""
    for marker, _, body in blocks:
        if marker == "run":
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert proc.returncode == 0, f"step failed:\n{body}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            printed = proc.stdout
        elif marker == "output":
            assert printed.strip() == body.strip()
    generated = (tmp_path / "pricing" / "payloads.go").read_text()
    for marker, lang, body in blocks:
        if marker == "fragment" and lang == "go":
            assert body in generated, f"the page shows Go code the codegen does not write:\n{body}"
