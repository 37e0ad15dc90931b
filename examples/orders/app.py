"""The order pipeline as a crosswire App (see README.md beside this file).

crosswire run examples.orders.app:app          # on the embedded JetStream
crosswire submit order.created --data '{"order_id": 1, "customer": "ada", "sku": "A-1",
    "qty": 2, "unit_price_cents": 1250, "country": "DE"}'
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

import crosswire
from crosswire import Event, Reject
from crosswire.schema import schema

ROOT = Path(__file__).resolve().parents[2]
GO_PRICING = os.environ.get("CROSSWIRE_GO_PRICING", str(ROOT / "examples/orders/go-pricing/bin/go-pricing"))
RUST_FRAUD = os.environ.get("CROSSWIRE_RUST_FRAUD", str(ROOT / "sdk/rust/target/release/rust-fraud"))


@schema("orders.Order", version=1)
class Order(msgspec.Struct):
    order_id: int
    customer: str
    sku: str
    qty: int
    unit_price_cents: int
    country: str


@schema("orders.Priced", version=1)
class Priced(msgspec.Struct):
    order_id: int
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    country: str


app = crosswire.App("orders", source="/shop/orders")
ledger: dict[int, Priced] = {}


@app.handler("order.created", timeout=2.0, retry=crosswire.Retry(max_attempts=3), emits={"order.validated": Order})
async def validate(event: Event[Order]) -> Event[Order]:
    """Reject impossible orders; pass the rest on as order.validated."""
    order = event.payload
    if order.qty <= 0:
        raise Reject(f"order {order.order_id}: quantity must be positive, got {order.qty}")
    if not order.sku:
        raise Reject(f"order {order.order_id}: missing sku")
    return Event.new(
        "order.validated", msgspec.msgpack.encode(order), datacontenttype="application/msgpack", key=event.key
    )


@app.handler("order.priced", timeout=2.0)
async def record(event: Event[Priced]) -> None:
    """The ledger: keep the priced total of every order."""
    ledger[event.payload.order_id] = event.payload


# Go: prices each validated order and emits order.priced.
app.worker(
    "pricing",
    command=[GO_PRICING],
    timeout=2.0,
    retry=crosswire.Retry(max_attempts=4, initial=0.05),
    runtime="go",
    handles={"order.validated": Order},
    emits={"order.priced": Priced},
)
# Rust: scores fraud risk; warms up slowly on some orders (transient errors, retried).
app.worker(
    "fraud",
    command=[RUST_FRAUD],
    timeout=2.0,
    retry=crosswire.Retry(max_attempts=4, initial=0.05),
    runtime="rust",
    handles={"order.validated": Order},
)
