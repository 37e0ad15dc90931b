"""``crosswire load`` and ``crosswire record`` as a user runs them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import crosswire
from crosswire.harness import TrafficPlan, load, run
from crosswire.jetstream import EmbeddedServer, JetStreamTransport

ROOT = Path(__file__).parents[2]
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CROSSWIRE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


PASSING = """
name = "cli-pass"
app = "examples.scenarios.apps:orders"
duration = 1.5
seed = 2
bin = 0.5
[[traffic]]
type = "order.created"
shape = { kind = "ramp", start_rate = 100, end_rate = 400 }
poison = 0.05
[[faults]]
kind = "handler_latency"
at = 0.5
duration = 0.5
dist = "exponential"
ms = 2
[verdicts]
lost = 0
max_duplicates = 0
poison_dead_lettered = true
key_order = true
max_rss_mb = 500
settle_timeout = 20
"""

FAILING = """
name = "cli-fail"
app = "examples.scenarios.apps:orders"
duration = 1
[[traffic]]
type = "order.created"
shape = { kind = "constant", rate = 50 }
[[faults]]
kind = "handler_error"
rate = 0.5
code = "failed_precondition"
retryable = false
[verdicts]
max_dead_lettered = 0
settle_timeout = 10
"""


def test_load_passes_writes_the_report_and_the_picture(tmp_path: Path) -> None:
    scenario = tmp_path / "pass.toml"
    scenario.write_text(PASSING)
    report, png, page = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "r.html"
    out = cli("load", str(scenario), "--report", str(report), "--png", str(png), "--html", str(page))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS poison_dead_lettered" in out.stdout and "PASS lost: 0" in out.stdout
    assert "t=" in out.stdout  # not a terminal: plain progress lines
    data = json.loads(report.read_text())
    assert data["ok"] is True and data["fates"]["lost"] == 0 and data["fates"]["offered"] > 300
    assert {v["name"] for v in data["verdicts"]} == {"lost", "duplicates", "poison_dead_lettered", "key_order", "rss"}
    assert len(data["series"]["t"]) >= 3 and sum(data["series"]["offered_per_s"]) > 0
    assert data["markers"] and data["markers"][0]["kind"] == "handler_latency"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "cli-pass" in text and "poison_dead_lettered" in text and "data:image/png;base64," in text


def test_a_failed_verdict_exits_1_and_says_why(tmp_path: Path) -> None:
    scenario = tmp_path / "fail.toml"
    scenario.write_text(FAILING)
    out = cli("load", str(scenario), "--quiet")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL dead_lettered" in out.stdout and "failed_precondition" in out.stdout


def test_mistakes_print_one_line_and_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[traffic]]\ntype = "a.b"\nshape = { kind = "constant", rate = "fast" }\n')
    out = cli("load", str(bad))
    assert out.returncode == 3 and out.stderr.count("\n") == 1 and "rate" in out.stderr, out.stderr
    out = cli("load", str(tmp_path / "missing.toml"))
    assert out.returncode == 3 and "cannot read scenario" in out.stderr
    good = tmp_path / "noapp.toml"
    good.write_text('duration = 1\n[[traffic]]\ntype = "a.b"\n')
    out = cli("load", str(good))
    assert out.returncode == 3 and "no app" in out.stderr
    out = cli("load", str(good), "--app", "no_such_module:app")
    assert out.returncode == 3 and "cannot import 'no_such_module'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.nats
async def test_record_a_stream_then_replay_it_with_the_same_keys_and_payloads(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "js") as server:
        events = [
            crosswire.Event.new(
                "order.created",
                msgspec.msgpack.encode({"order_id": i + 1, "customer": "ada", "sku": "A-1", "qty": 1 + i % 5,
                                        "unit_price_cents": 100}),
                datacontenttype="application/msgpack",
                key=f"order-{i % 7}",
            )
            for i in range(60)
        ]  # fmt: skip
        async with JetStreamTransport(server.url, stream="REC", subject_prefix="rec") as transport:
            await transport.publish(events[:30])
            await transport.publish(events[30:])
        recording = tmp_path / "orders.jsonl"
        out = cli("record", str(recording), "--nats", server.url, "--stream", "REC", "--prefix", "rec")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "recorded 60 events" in out.stdout
    lines = recording.read_text().splitlines()
    assert json.loads(lines[0])["recording"]["stream"] == "REC" and len(lines) == 61
    scenario_file = tmp_path / "replay.toml"
    scenario_file.write_text(
        f'name = "replay"\napp = "examples.scenarios.apps:orders"\nduration = 1\n'
        f'[[traffic]]\nshape = {{ kind = "replay", file = "{recording.name}", speed = 10 }}\n'
        "[verdicts]\nlost = 0\nkey_order = true\nsettle_timeout = 20\n"
    )
    scenario = load(scenario_file)
    offers = TrafficPlan(scenario, lambda _t: None).all()
    assert [(o.type, o.key, o.data) for o in offers] == [(e.type, e.partitionkey, e.data) for e in events]
    assert offers[-1].at < 1.0  # recorded over well under 10 s, replayed at x10
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = await run(scenario)
    finally:
        os.chdir(cwd)
    assert result.ok, result.verdicts
    assert result.fates["handled"] == 60
