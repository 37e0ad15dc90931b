"""Shared pieces of the schema tests: the crosswire command, the AsyncAPI parser (from the
npm registry, installed into .tools/npm on first use), and the test app's types."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]
NPM_DIR = ROOT / ".tools" / "npm"
PARSER_VERSION = "3.6.6"  # @asyncapi/parser, the official AsyncAPI parser


def cli(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [*CROSSWIRE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env
    )


def _install_parser() -> Path:
    module = NPM_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json"
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    with open(NPM_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if module.exists() and json.loads(module.read_text()).get("version") == PARSER_VERSION:
            return NPM_DIR / "node_modules"
        proc = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(NPM_DIR),
             f"@asyncapi/parser@{PARSER_VERSION}"],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"npm install @asyncapi/parser failed:\n{proc.stdout}\n{proc.stderr}")
    return NPM_DIR / "node_modules"


@pytest.fixture(scope="session")
def asyncapi_validate() -> Any:
    """``validate(*files) -> list[dict]``: the official parser's verdict for each file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the AsyncAPI parser (@asyncapi/parser) cannot run")
    modules = _install_parser()

    def validate(*files: Path) -> list[dict[str, Any]]:
        proc = subprocess.run(
            ["node", str(HERE / "validate_asyncapi.cjs"), *map(str, files)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "NODE_PATH": str(modules)},
        )  # fmt: skip
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"the AsyncAPI parser crashed:\n{proc.stderr}")
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    return validate
