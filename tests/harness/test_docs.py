"""The scenarios shown in README.md and docs/harness.md parse, and the README's runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
import pytest

from crosswire.harness import Scenario, loads, run, write_png

ROOT = Path(__file__).parents[2]


def _toml_blocks(path: Path) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", path.read_text(), flags=re.S)


def test_every_toml_block_in_the_docs_parses() -> None:
    blocks = _toml_blocks(ROOT / "README.md") + _toml_blocks(ROOT / "docs" / "harness.md")
    scenarios = [b for b in blocks if "[[traffic]]" in b and 'kind = "replay"' not in b]
    assert len(scenarios) >= 2
    for block in scenarios:
        assert isinstance(loads(block), Scenario)
    readme = next(b for b in _toml_blocks(ROOT / "README.md") if "[[traffic]]" in b)
    assert len(readme.strip().splitlines()) <= 25


@pytest.mark.nats
@pytest.mark.timeout(120)
async def test_the_readme_scenario_gives_a_verdict_and_a_picture(tmp_path: Path) -> None:
    readme = next(b for b in _toml_blocks(ROOT / "README.md") if "[[traffic]]" in b)
    scenario = loads(readme).scaled(0.15)  # 4.5 s instead of 30
    scenario = msgspec.structs.replace(scenario, node={"ack_wait": 3.0})
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = await run(scenario, app="examples.scenarios.apps:orders", transport="jetstream")
    finally:
        os.chdir(cwd)
    assert {v.name for v in result.verdicts} == {"lost", "poison_dead_lettered", "p99"}
    lost = next(v for v in result.verdicts if v.name == "lost")
    assert lost.ok, (lost, result.fates)
    assert any(m["kind"] == "node" for m in result.report["markers"])
    write_png(result.report, tmp_path / "out.png")
    assert (tmp_path / "out.png").stat().st_size > 10_000
