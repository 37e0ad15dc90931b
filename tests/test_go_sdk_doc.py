"""Every Go block in docs/go-sdk.md compiles and runs as written.

Each ```go block must be preceded by a marker comment:

- ``<!-- doc-test: main -->``: a whole program; it becomes ``main.go`` of a fresh module
  whose ``go.mod`` is the page's ```go.mod block, with the ``replace`` pointed at this
  checkout's sdk/go (as the page tells a reader to do);
- ``<!-- doc-test: test -->``: a test file added to the module of the ``main`` block
  before it; the module is then vetted and its tests run (``go test``);
- ``<!-- doc-test: fragment -->``: a piece shown for reading; only counted.

A block without a marker fails the test, so a new snippet cannot go untested by accident.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "go-sdk.md"
SDK = ROOT / "sdk" / "go"
BLOCK = re.compile(r"(?:<!-- doc-test: (\w+) -->\n)?```([\w.]*)\n(.*?)\n```", re.S)
REPLACE = re.compile(r"^replace github\.com/crosswire-dev/crosswire/sdk/go => .+$", re.M)


def _blocks() -> list[tuple[str | None, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(DOC.read_text())]


def _modules() -> list[tuple[str, list[str]]]:
    """(main.go text, [test files]) per ``main`` block."""
    modules: list[tuple[str, list[str]]] = []
    for marker, lang, body in _blocks():
        if lang != "go":
            continue
        assert marker in ("main", "test", "fragment"), f"a Go block without a doc-test marker:\n{body[:200]}"
        if marker == "main":
            modules.append((body, []))
        elif marker == "test":
            assert modules, "a test block before any main block"
            modules[-1][1].append(body)
    return modules


def _go_mod() -> str:
    (mod,) = [body for _, lang, body in _blocks() if lang == "go.mod"]
    assert "require github.com/crosswire-dev/crosswire/sdk/go v0.0.0" in mod
    assert REPLACE.search(mod), "the go.mod block must show the replace directive"
    return REPLACE.sub(f"replace github.com/crosswire-dev/crosswire/sdk/go => {SDK}", mod)


def test_every_go_block_is_marked_and_the_page_has_a_program_and_a_test() -> None:
    modules = _modules()
    assert modules and any(tests for _, tests in modules)
    fragments = [b for m, lang, b in _blocks() if lang == "go" and m == "fragment"]
    assert len(fragments) <= 3, "most blocks should compile; keep fragments few"


@pytest.mark.parametrize("index", range(len(_modules())))
def test_go_blocks_build_and_their_tests_pass(index: int, tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no `go` toolchain on PATH")
    main, tests = _modules()[index]
    (tmp_path / "go.mod").write_text(_go_mod() + "\n")
    shutil.copy(SDK / "go.sum", tmp_path / "go.sum")
    (tmp_path / "main.go").write_text(main + "\n")
    for i, test in enumerate(tests):
        (tmp_path / f"doc{i}_test.go").write_text(test + "\n")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOWORK": "off"}

    def go_run(*args: str) -> None:
        result = subprocess.run(
            [go, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert result.returncode == 0, f"go {' '.join(args)}:\n{result.stdout}\n{result.stderr}"

    go_run("vet", "./...")
    unformatted = subprocess.run(
        [str(Path(go).with_name("gofmt")), "-l", "."], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert unformatted.stdout == "", f"not gofmt-formatted: {unformatted.stdout}"
    go_run("test", "-count=1", "./...") if tests else go_run("build", "./...")
