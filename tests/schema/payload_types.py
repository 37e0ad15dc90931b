"""The payload types of the schema tests: spec/payloads.md's test schemas (Customer, Item
and Numbers as the Python conformance worker declares them; Order with a declared schema
id) and ``Kitchen``, one of everything codegen handles (nested types, optional fields,
lists, maps, enums, timestamps, bytes, renamed fields), as an App whose handlers receive
them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

import msgspec

import crosswire
from crosswire.schema import schema
from crosswire.testworker import Customer, Item, Numbers


def _bounded(lo: int, hi: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


I64 = _bounded(-(2**63), 2**63 - 1)
Time = Annotated[dt.datetime, msgspec.Meta(tz=True)]


@schema("vectors.Order", version=1)
class Order(msgspec.Struct):
    order_id: I64  # type: ignore[valid-type]
    customer: Customer
    items: list[Item]
    note: str | None = None
    tags: dict[str, str] = {}
    paid_at: Time | None = None
    blob: bytes = b""


class Status(enum.Enum):
    NEW = "new"
    PAID = "paid"
    SHIPPED = "shipped"


class Address(msgspec.Struct, rename="camel"):
    street_name: str
    post_code: str | None = None


@schema("test.Kitchen", version=7)
class Kitchen(msgspec.Struct, rename="camel"):
    kitchen_id: I64  # type: ignore[valid-type]
    status: Status
    address: Address
    stamps: list[Time]  # type: ignore[valid-type]
    scores: dict[str, float]
    grid: list[list[_bounded(-(2**15), 2**15 - 1)]]  # type: ignore[valid-type]
    by_name: dict[str, Address]
    raw: bytes
    at: Time  # type: ignore[valid-type]
    flag: bool
    type: str  # a keyword in Go and Rust
    previous: Status | None = None
    backup: Address | None = None
    labels: list[str] | None = None
    thumb: bytes | None = None
    seen_at: Time | None = None  # type: ignore[valid-type]
    count: int = 0
    extras: dict[str, str] = {}
    small: _bounded(0, 255) = 0  # type: ignore[valid-type]


app = crosswire.App("schematest")


@app.handler("vectors.order")
async def orders(event: crosswire.Event[Order]) -> None: ...


@app.handler("vectors.numbers")
async def numbers(event: crosswire.Event[Numbers]) -> None: ...


@app.handler("test.kitchen")
async def kitchen(event: crosswire.Event[Kitchen]) -> None: ...
