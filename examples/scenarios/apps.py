"""Apps the shipped scenarios run against (``examples.scenarios.apps:<name>``).

- ``orders``: a typed Python handler with crosswire's defaults (breaker on, Retry(3)).
- ``orders_large``: the same with a large ``note`` and ``blob`` in each order.
- ``workers``: the Go and Rust conformance workers (``test.echo``, ``test.sleep``).
- ``hung``: a Python worker whose handler ignores its deadline (keeps its credit).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import msgspec

import crosswire

ROOT = Path(__file__).resolve().parents[2]


class Order(msgspec.Struct):
    order_id: Annotated[int, msgspec.Meta(ge=1)]
    customer: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    qty: Annotated[int, msgspec.Meta(ge=1, le=100)]
    unit_price_cents: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class LargeOrder(msgspec.Struct):
    order_id: Annotated[int, msgspec.Meta(ge=1)]
    qty: Annotated[int, msgspec.Meta(ge=1, le=100)]
    note: str
    blob: bytes


orders = crosswire.App("orders")


@orders.handler("order.created", timeout=2.0)
async def reserve_stock(event: crosswire.Event[Order]) -> None:
    order = event.payload
    if order.qty <= 0:  # never, by the type's bounds
        raise crosswire.Reject("quantity must be positive")
    await asyncio.sleep(0)


orders_large = crosswire.App("orders-large")


@orders_large.handler("order.large", timeout=30.0, concurrency=2)
async def store_large(event: crosswire.Event[LargeOrder]) -> None:
    order = event.payload
    if len(order.blob) != len(order.blob):  # touch the payload
        raise AssertionError
    await asyncio.sleep(0.01)  # about 200 events/s with concurrency 2


def _worker_command(env_var: str, default: Path, name: str) -> list[str]:
    return [os.environ.get(env_var, str(default)), "--name", name]


workers = crosswire.App("workers")
workers.worker(
    "go",
    command=_worker_command("CROSSWIRE_GO_TESTWORKER", ROOT / "sdk/go/bin/crosswire-testworker", "go"),
    timeout=2.0,
    retry=crosswire.Retry(max_attempts=5, initial=0.05),
)
workers.worker(
    "rust",
    command=_worker_command("CROSSWIRE_RUST_TESTWORKER", ROOT / "sdk/rust/target/release/examples/testworker", "rust"),
    timeout=2.0,
    retry=crosswire.Retry(max_attempts=5, initial=0.05),
)

orders_no_breaker = crosswire.App("orders")
orders_no_breaker.handler("order.created", timeout=2.0, breaker=False)(reserve_stock)

hung = crosswire.App("hung")
hung.worker(
    "sticky",
    command=[sys.executable, "-m", "examples.scenarios.hung_worker"],
    cwd=str(ROOT),
    timeout=0.5,
    retry=crosswire.Retry(max_attempts=3, initial=0.05),
    concurrency=16,
    hang_grace=1.0,
)
