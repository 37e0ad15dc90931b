"""The order demo's generated contract (examples/orders/schema/) is current, and the
generated Go and Rust types drop into the demo's workers in place of their hand-written
structs: each worker, with its structs replaced by the generated file, passes vet/clippy and
its own tests. Regenerate with ``make codegen``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, cli

STAGED = ROOT / "examples" / "orders" / "schema"
APP = "examples.orders.app:app"


def test_the_asyncapi_document_is_current() -> None:
    proc = cli("schema", "export", APP)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((STAGED / "asyncapi.json").read_text()), (
        "examples/orders/schema/asyncapi.json is stale: run make codegen"
    )


@pytest.mark.parametrize(("lang", "sub", "extra"), [("go", "go", ["--package", "main"]), ("rust", "rust", [])])
def test_the_generated_types_are_current(lang: str, sub: str, extra: list[str]) -> None:
    proc = cli("codegen", "--lang", lang, "--app", APP, "-o", str(STAGED / sub), *extra, "--check")
    assert proc.returncode == 0, f"{proc.stderr} (run make codegen)"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.e2e
def test_go_pricing_builds_and_passes_with_the_generated_structs(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    mod = tmp_path / "go-pricing"
    shutil.copytree(ROOT / "examples" / "orders" / "go-pricing", mod, ignore=shutil.ignore_patterns("bin"))
    gomod = (mod / "go.mod").read_text()
    (mod / "go.mod").write_text(gomod.replace("=> ../../../sdk/go", f"=> {ROOT / 'sdk' / 'go'}"))
    main = (mod / "main.go").read_text()
    stripped = re.sub(r"(//[^\n]*\n)*type (Order|Priced) struct \{[^}]*\}\n\n", "", main)
    assert stripped.count("type Order struct") == 0 and stripped.count("type Priced struct") == 0
    (mod / "main.go").write_text(stripped)
    shutil.copy(STAGED / "go" / "payloads.go", mod / "payloads.go")
    _run(["gofmt", "-l", "."], mod)
    _run(["go", "vet", "./..."], mod)
    _run(["go", "test", "-count=1", "./..."], mod)


@pytest.mark.e2e
def test_rust_fraud_builds_and_passes_with_the_generated_struct(tmp_path: Path) -> None:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    crate = tmp_path / "rust-fraud"
    shutil.copytree(ROOT / "examples" / "orders" / "rust-fraud", crate, ignore=shutil.ignore_patterns("target"))
    toml = (crate / "Cargo.toml").read_text()
    (crate / "Cargo.toml").write_text(
        toml.replace('path = "../../../sdk/rust"', f"path = {json.dumps(str(ROOT / 'sdk' / 'rust'))}")
    )
    main = (crate / "src" / "main.rs").read_text()
    stripped = re.sub(
        r"(///[^\n]*\n)*#\[derive\([^)]*\)\]\n(#\[cfg_attr[^\n]*\n)?struct Order \{.*?\n\}\n", "", main, flags=re.S
    )
    assert "struct Order" not in stripped
    stripped = stripped.replace("use serde::Deserialize;\n", "")
    stripped = stripped.replace(
        "#![forbid(unsafe_code)]\n", "#![forbid(unsafe_code)]\n\nmod payloads;\nuse payloads::Order;\n", 1
    )
    (crate / "src" / "main.rs").write_text(stripped)
    shutil.copy(STAGED / "rust" / "payloads.rs", crate / "src" / "payloads.rs")
    env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "sdk" / "rust" / "target")}
    _run(["cargo", "clippy", "--quiet", "--all-targets", "--", "-D", "warnings"], crate, env)
    _run(["cargo", "test", "--quiet"], crate, env)
