"""Fixtures for the worker-protocol tests: real worker processes over real sockets.

The conformance worker of each SDK (spec/conformance-worker.md) is built once per
session. A missing toolchain skips that runtime with a loud reason; a build that
fails is a test failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from crosswire._workers import WorkerHub, WorkerOptions, WorkerPool, WorkerSpec

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = ROOT / "sdk" / "go"
RUST_DIR = ROOT / "sdk" / "rust"

_built: dict[str, list[str]] = {}


def _build(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        pytest.fail(f"{what}: cannot run {cmd[0]!r}")
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({' '.join(cmd)} in {cwd}):\n{proc.stdout}\n{proc.stderr}")


def conformance_command(runtime: str) -> list[str]:
    """The argv that starts ``runtime``'s conformance worker, building it if needed."""
    if runtime in _built:
        return _built[runtime]
    if runtime == "python":
        argv = [sys.executable, "-m", "crosswire.testworker"]
    elif runtime == "go":
        given = os.environ.get("CROSSWIRE_GO_TESTWORKER")  # a prebuilt binary is used as is
        binary = Path(given or GO_DIR / "bin" / "crosswire-testworker")
        go = shutil.which("go")
        if go is not None and not given:
            _build(
                [go, "build", "-o", str(binary), "./cmd/crosswire-testworker"],
                GO_DIR,
                "building the Go conformance worker",
            )
        elif not binary.exists():
            pytest.skip(f"SKIPPING Go worker tests: no `go` toolchain on PATH and no {binary}")
        argv = [str(binary)]
    elif runtime == "rust":
        target = Path(os.environ.get("CARGO_TARGET_DIR", RUST_DIR / "target"))
        given = os.environ.get("CROSSWIRE_RUST_TESTWORKER")
        binary = Path(given or target / "release" / "examples" / "testworker")
        cargo = shutil.which("cargo")
        if cargo is not None and not given:
            # build where the binary is expected: <target>/release/examples/testworker
            _build(
                [
                    cargo,
                    "build",
                    "--release",
                    "--quiet",
                    "--example",
                    "testworker",
                    "--target-dir",
                    str(binary.parents[2]),
                ],
                RUST_DIR,
                "building the Rust conformance worker",
            )
        elif not binary.exists():
            pytest.skip(f"SKIPPING Rust worker tests: no `cargo` toolchain on PATH and no {binary}")
        argv = [str(binary)]
    else:
        raise ValueError(runtime)
    _built[runtime] = argv
    return argv


RUNTIMES = [
    "python",
    pytest.param("go", marks=pytest.mark.e2e),
    pytest.param("rust", marks=pytest.mark.e2e),
]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def hub() -> AsyncIterator[WorkerHub]:
    async with WorkerHub("test-node") as h:
        yield h


@pytest.fixture
def worker_argv(runtime: str) -> list[str]:
    """The argv of ``runtime``'s conformance worker (built once per session)."""
    return conformance_command(runtime)


PoolFactory = Callable[..., WorkerPool]


@pytest.fixture
async def make_pool(hub: WorkerHub) -> AsyncIterator[PoolFactory]:
    """``make_pool(runtime, *extra_args, **spec_fields)``: an unstarted pool; closed after."""
    pools: list[WorkerPool] = []

    def factory(runtime: str, *args: str, **fields: Any) -> WorkerPool:
        name = fields.pop("name", f"testworker-{runtime}")
        command = [*conformance_command(runtime), "--name", name, *args]
        pool = WorkerPool(WorkerSpec(name=name, command=tuple(command), options=WorkerOptions(**fields)), hub)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        await pool.close()
