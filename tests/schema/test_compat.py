"""``crosswire schema check OLD NEW`` on the pinned schema pairs in tests/schema/compat/:
each file holds ``old``, ``new``, the expected ``verdict`` and every expected change with
its mode (rules: crosswire._schema._compat, docs/schema.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import HERE, cli

CASES = sorted((HERE / "compat").glob("*.json"))


def _check(tmp_path: Path, case: dict[str, Any], *extra: str) -> Any:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(case["old"]))
    new.write_text(json.dumps(case["new"]))
    return cli("schema", "check", str(old), str(new), *extra)


def test_there_is_a_case_per_rule() -> None:
    verdicts = {json.loads(p.read_text())["verdict"] for p in CASES}
    assert len(CASES) >= 20
    assert verdicts == {"identical", "full", "backward", "forward", "breaking"}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_pinned_pair(tmp_path: Path, path: Path) -> None:
    case = json.loads(path.read_text())
    proc = _check(tmp_path, case, "--json")
    assert proc.returncode == (1 if case["verdict"] == "breaking" else 0), proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == case["verdict"], f"{case['description']}: {report}"
    assert [[c["path"], c["mode"]] for c in report["changes"]] == case["changes"], report
    if "notes" in case:
        assert report["notes"] == case["notes"]


def test_require_makes_the_exit_code_strict(tmp_path: Path) -> None:
    case = json.loads((HERE / "compat" / "widen-integer.json").read_text())  # backward
    assert _check(tmp_path, case, "--require", "backward").returncode == 0
    assert _check(tmp_path, case, "--require", "forward").returncode == 1
    assert _check(tmp_path, case, "--require", "full").returncode == 1
    text = _check(tmp_path, case).stdout
    assert text.splitlines() == [
        "verdict: backward",
        "  backward  shop.Order.qty: integer range [-2147483648, 2147483647] → [-9223372036854775808, 9223372036854775807]",
    ]


def test_unreadable_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = cli("schema", "check", str(bad), str(bad))
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"crosswire: {bad}: not valid JSON")


def test_new_may_be_the_app_itself(tmp_path: Path) -> None:
    """CI form: the checked-in document against the app as it is now."""
    staged = HERE.parents[1] / "examples" / "orders" / "schema" / "asyncapi.json"
    proc = cli("schema", "check", str(staged), "examples.orders.app:app", "--require", "full")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "verdict: identical"
