"""The order pipeline end to end: one checkout trace across Python, Go and Rust.

`crosswire run examples.orders.app:app --otlp-endpoint ... --log-json` on the embedded
JetStream, with the real Go (pricing) and Rust (fraud) workers, and `crosswire submit
--traceparent` for two orders of one checkout: order 3, which the Rust worker fails on
its first attempt (retried), and order 49, which has no quantity (dead-lettered by the
Python validator). The spans arrive at an OTLP/HTTP endpoint that decodes the official
protobuf messages; the node's JSON log lines are read from its stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .otlp_receiver import Receiver, Span, serve

ROOT = Path(__file__).resolve().parents[2]
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]
GO_PRICING = ROOT / "examples/orders/go-pricing/bin/go-pricing"
RUST_FRAUD = ROOT / "sdk/rust/target/release/rust-fraud"
TRACE = "6e0c63257de34c926f9efcd03927272e"
CHECKOUT = f"00-{TRACE}-a2fb4a1d1a96d312-01"

pytestmark = [pytest.mark.nats, pytest.mark.e2e]


def DATA(tmp: Path) -> list[str]:
    return ["--data-dir", str(tmp)]


def _order(order_id: int, qty: int) -> str:
    return json.dumps(
        {"order_id": order_id, "customer": "ada", "sku": "A-1", "qty": qty, "unit_price_cents": 1250, "country": "DE"}
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec, server = serve()
    yield rec
    server.shutdown()


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, **extra}


def _complete(spans: list[Span]) -> bool:
    names = [s.name for s in spans]
    return (
        names.count("process order.created") == 2
        and names.count("process order.validated") == 3
        and "process order.priced" in names
        and "compute price" in names
        and "score order" in names
    )


def test_one_checkout_is_one_trace_across_three_runtimes(tmp_path: Path, receiver: Receiver) -> None:
    missing = [str(p) for p in (GO_PRICING, RUST_FRAUD) if not p.exists()]
    if missing:
        pytest.skip(f"SKIPPING the order pipeline trace test: run `make build` first (missing {missing})")
    log = tmp_path / "node.log"
    with open(log, "w") as f:
        node = subprocess.Popen(
            [
                *CROSSWIRE,
                "--log-json",
                "run",
                "examples.orders.app:app",
                "--otlp-endpoint",
                receiver.endpoint,
                *DATA(tmp_path),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=f,
            text=True,
            env=_env(OTEL_SERVICE_NAME="orders", OTEL_BSP_SCHEDULE_DELAY="100"),
        )
    try:
        deadline = time.monotonic() + 60
        while "ready on" not in log.read_text():
            assert node.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        ids = {}
        for order_id, qty in ((3, 2), (49, 0)):
            submitted = subprocess.run(
                [
                    *CROSSWIRE,
                    "submit",
                    "order.created",
                    "--data",
                    _order(order_id, qty),
                    "--traceparent",
                    CHECKOUT,
                    *DATA(tmp_path),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                env=_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="checkout"),
            )
            assert submitted.returncode == 0, submitted.stderr
            assert f"trace_id {TRACE}" in submitted.stderr
            ids[order_id] = submitted.stdout.strip()
        spans = receiver.wait_for(_complete, timeout=60)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(60)

    assert {s.trace_id for s in spans} == {TRACE}  # one trace
    by_id = {s.span_id: s for s in spans}

    def parent(span: Span) -> Span:
        assert span.parent_id in by_id, f"{span.name}: parent {span.parent_id} not exported"
        return by_id[span.parent_id]

    def one(name: str, **attrs: object) -> Span:
        found = [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())]
        assert len(found) == 1, (name, attrs, [(s.name, s.attributes) for s in spans if s.name == name])
        return found[0]

    # the producer side: the checkout's send spans, children of the given traceparent
    sends = [s for s in spans if s.name == "send order.created"]
    assert len(sends) == 2 and all(s.parent_id == "a2fb4a1d1a96d312" for s in sends)
    assert {s.resource["service.name"] for s in sends} == {"checkout"}

    # Python validates order 3 and creates order.validated under its CONSUMER span
    validate = one("process order.created", **{"messaging.message.id": ids[3]})
    assert parent(validate).name == "send order.created" and validate.kind == 5
    assert validate.links == [(TRACE, validate.parent_id)]
    assert validate.attributes["crosswire.runtime"] == "python"
    created = one("create order.validated")
    assert parent(created) is validate and created.kind == 4

    # Go: the CONSUMER span, the worker's attempt span, and the span inside the handler
    pricing = one("process order.validated", **{"crosswire.binding": "pricing:order.validated"})
    assert parent(pricing) is created and pricing.links == [(TRACE, created.span_id)]
    assert pricing.attributes["messaging.consumer.group.name"] == "orders.pricing:order.validated"
    assert pricing.attributes["messaging.system"] == "nats"
    go_handle = one("handle order.validated", **{"crosswire.worker.runtime": "go"})
    assert parent(go_handle) is pricing
    assert go_handle.attributes["crosswire.worker.name"] == "pricing" and go_handle.attributes["process.pid"] > 0
    compute = one("compute price")
    assert parent(compute) is go_handle and compute.attributes["total_cents"] == 2975
    assert compute.scope == "crosswire.worker.go"

    # Rust: attempt 1 fails (retried), attempt 2 scores inside a span of its own
    fraud = sorted(
        (s for s in spans if s.attributes.get("crosswire.binding") == "fraud:order.validated"),
        key=lambda s: s.attributes["crosswire.attempt"],
    )
    assert [s.attributes["crosswire.attempt"] for s in fraud] == [1, 2]
    assert all(parent(s) is created for s in fraud)
    assert fraud[0].attributes["error.type"] == "unavailable" and fraud[0].status_code == 2
    assert [e[0] for e in fraud[0].events] == ["retry"]
    assert fraud[1].status_code != 2
    rust_handles = sorted(
        (
            s
            for s in spans
            if s.name == "handle order.validated" and s.attributes.get("crosswire.worker.runtime") == "rust"
        ),
        key=lambda s: s.start_ns,
    )
    assert [parent(h) for h in rust_handles] == fraud
    assert rust_handles[0].status_code == 2 and rust_handles[0].attributes["error.type"] == "unavailable"
    assert rust_handles[1].attributes["process.pid"] > 0
    score = one("score order")
    assert parent(score) is rust_handles[1] and score.attributes["order_id"] == 3

    # Go's order.priced reaches the Python ledger in the same trace
    priced = one("process order.priced")
    assert parent(parent(priced)) is pricing and parent(priced).name == "create order.priced"

    # the dead-lettered order: rejected by the Python validator, a dead_letter event
    rejected = one("process order.created", **{"messaging.message.id": ids[49]})
    assert rejected.attributes["error.type"] == "rejected"
    assert [e[0] for e in rejected.events] == ["dead_letter"]

    runtimes = {s.attributes.get("crosswire.runtime") or s.attributes.get("crosswire.worker.runtime") for s in spans}
    assert {"python", "go", "rust"} <= runtimes

    # one log stream: the Go and Rust handlers' lines, from the node, with the trace id
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    go_lines = [x for x in lines if x.get("runtime") == "go" and x["message"] == "priced order"]
    rust_lines = [
        x for x in lines if x.get("runtime") == "rust" and x["message"] in ("scored order", "fraud service warming up")
    ]
    assert go_lines and rust_lines, [x for x in lines if x.get("worker")]
    for line in go_lines + rust_lines:
        assert line["trace_id"] == TRACE
        assert line["event_id"] and line["correlation_id"] and line["binding"].endswith(":order.validated")
        assert line["worker"] in ("pricing", "fraud") and line["pid"] > 0 and line["span_id"]
    assert go_lines[0]["span_id"] == compute.span_id  # written inside the Go span
    assert {x["message"] for x in rust_lines} == {"scored order", "fraud service warming up"}
    assert next(x for x in rust_lines if x["message"] == "scored order")["span_id"] == score.span_id
