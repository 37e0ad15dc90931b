"""The payload types of the schema tests: spec/payloads.md's test schemas (Customer, Item,
Order, Numbers, declared with the widths that spec asks of Python) and ``Kitchen``, one of
everything codegen handles (nested types, optional fields, lists, maps, enums,
timestamps, bytes, renamed fields), as an App whose handlers receive them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

import msgspec

import crosswire
from crosswire.schema import schema


def _bounded(lo: int, hi: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


I64 = _bounded(-(2**63), 2**63 - 1)
U32 = _bounded(0, 2**32 - 1)
Time = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class Customer(msgspec.Struct):
    id: I64  # type: ignore[valid-type]
    name: str
    email: str | None = None


class Item(msgspec.Struct):
    sku: str
    qty: U32  # type: ignore[valid-type]
    price: float


@schema("vectors.Order", version=1)
class Order(msgspec.Struct):
    order_id: I64  # type: ignore[valid-type]
    customer: Customer
    items: list[Item]
    note: str | None = None
    tags: dict[str, str] = {}
    paid_at: Time | None = None
    blob: bytes = b""


class Numbers(msgspec.Struct):
    i8: _bounded(-(2**7), 2**7 - 1)  # type: ignore[valid-type]
    u8: _bounded(0, 2**8 - 1)  # type: ignore[valid-type]
    i16: _bounded(-(2**15), 2**15 - 1)  # type: ignore[valid-type]
    u16: _bounded(0, 2**16 - 1)  # type: ignore[valid-type]
    i32: _bounded(-(2**31), 2**31 - 1)  # type: ignore[valid-type]
    u32: U32  # type: ignore[valid-type]
    i64: I64  # type: ignore[valid-type]
    u64: Annotated[int, msgspec.Meta(ge=0)]
    f64: float

    def __post_init__(self) -> None:
        if self.u64 > 2**64 - 1:  # msgspec's bounds stop at int64
            raise ValueError("u64 does not fit 64 bits")


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
