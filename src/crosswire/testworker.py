"""The Python conformance worker (spec/conformance-worker.md).

``python -m crosswire.testworker [--name N] [--max-in-flight N] [--protocol-version V]...
[--max-frame BYTES]`` — connects to ``$CROSSWIRE_SOCKET`` and handles the ``test.*``
event types exactly as the Go and Rust conformance workers do. Built only on the public
worker SDK (:mod:`crosswire.worker`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from typing import Annotated, Any

import msgspec

from crosswire.worker import DEFAULT_MAX_FRAME, PROTOCOL_VERSIONS, Context, ErrorCode, Event, Fail, RetryLater, Worker

__all__ = ["Customer", "Item", "Numbers", "Order", "build", "main"]


def _bounded(lo: int, hi: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


# The test schemas of spec/payloads.md, declared as an app author would.
_I64 = _bounded(-(2**63), 2**63 - 1)


class Customer(msgspec.Struct):
    id: _I64  # type: ignore[valid-type]
    name: str
    email: str | None = None


class Item(msgspec.Struct):
    sku: str
    qty: _bounded(0, 2**32 - 1)  # type: ignore[valid-type]
    price: float


class Order(msgspec.Struct):
    order_id: _I64  # type: ignore[valid-type]
    customer: Customer
    items: list[Item]
    note: str | None = None
    tags: dict[str, str] = {}
    paid_at: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None
    blob: bytes = b""


class Numbers(msgspec.Struct):
    i8: _bounded(-(2**7), 2**7 - 1)  # type: ignore[valid-type]
    u8: _bounded(0, 2**8 - 1)  # type: ignore[valid-type]
    i16: _bounded(-(2**15), 2**15 - 1)  # type: ignore[valid-type]
    u16: _bounded(0, 2**16 - 1)  # type: ignore[valid-type]
    i32: _bounded(-(2**31), 2**31 - 1)  # type: ignore[valid-type]
    u32: _bounded(0, 2**32 - 1)  # type: ignore[valid-type]
    i64: _I64  # type: ignore[valid-type]
    u64: Annotated[int, msgspec.Meta(ge=0)]
    f64: float

    def __post_init__(self) -> None:
        if self.u64 > 2**64 - 1:  # msgspec's bounds stop at int64
            raise ValueError("u64 does not fit 64 bits")


_MSGPACK = msgspec.msgpack.Encoder()


def _payload(event: Event[Any]) -> dict[str, Any]:
    if not event.data:
        return {}
    try:
        value = msgspec.msgpack.decode(event.data)
    except msgspec.DecodeError as exc:
        raise Fail(ErrorCode.INVALID_ARGUMENT, f"payload is not MessagePack: {exc}", retryable=False) from None
    if not isinstance(value, dict):
        raise Fail(ErrorCode.INVALID_ARGUMENT, "payload must be a MessagePack map", retryable=False)
    return value


def _int(payload: dict[str, Any], key: str, default: int) -> int:
    value = payload.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Fail(ErrorCode.INVALID_ARGUMENT, f"payload {key!r} must be an integer", retryable=False)
    return value


def build(name: str, *, max_in_flight: int, versions: list[int], max_frame: int) -> Worker:
    """The conformance worker with its handlers registered."""
    w = Worker(name, max_in_flight=max_in_flight, versions=versions, max_frame=max_frame)

    @w.handler("test.echo")
    async def echo(ctx: Context, event: Event[Any]) -> None:
        return None

    @w.handler("test.fail_transient")
    async def fail_transient(ctx: Context, event: Event[Any]) -> None:
        fail_until = _int(_payload(event), "fail_until", 3)
        if event.attempt < fail_until:
            raise RetryLater(after=0.01, reason=f"transient failure on attempt {event.attempt}")

    @w.handler("test.fail_permanent")
    async def fail_permanent(ctx: Context, event: Event[Any]) -> None:
        raise Fail(ErrorCode.INVALID_ARGUMENT, "permanent failure requested", retryable=False)

    @w.handler("test.sleep")
    async def sleep(ctx: Context, event: Event[Any]) -> None:
        await asyncio.sleep(_int(_payload(event), "ms", 500) / 1000)

    @w.handler("test.hang")
    async def hang(ctx: Context, event: Event[Any]) -> None:
        # ignores its deadline on purpose (swallows the cancellation): the node must
        # reclaim the credit this delivery keeps
        loop = asyncio.get_running_loop()
        end = loop.time() + _int(_payload(event), "ms", 60000) / 1000
        while (left := end - loop.time()) > 0:
            try:
                await asyncio.sleep(left)
            except asyncio.CancelledError:
                continue

    @w.handler("test.emit")
    async def emit(ctx: Context, event: Event[Any]) -> None:
        ctx.emit("test.emitted", event.data, datacontenttype=event.datacontenttype)

    # decode into the spec's schemas and emit what was read (the payload-vector tests)
    @w.handler("test.payload.order")
    async def payload_order(ctx: Context, event: Event[Order]) -> None:
        ctx.emit("test.payload.order.decoded", _MSGPACK.encode(event.payload), datacontenttype="application/msgpack")

    @w.handler("test.payload.numbers")
    async def payload_numbers(ctx: Context, event: Event[Numbers]) -> None:
        data = _MSGPACK.encode(event.payload)
        ctx.emit("test.payload.numbers.decoded", data, datacontenttype="application/msgpack")

    @w.handler("test.panic")
    async def panic(ctx: Context, event: Event[Any]) -> None:
        raise RuntimeError("panic requested by test.panic")

    # built against version 1 of the test order schema only (hello schemas)
    @w.handler("test.versioned", accepts=[TEST_ORDER_DATASCHEMA])
    async def versioned(ctx: Context, event: Event[Any]) -> None:
        pass

    return w


#: The one version of the test order schema ``test.versioned`` reads.
TEST_ORDER_DATASCHEMA = "urn:crosswire:schema:crosswire.test.Order:1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m crosswire.testworker", description=__doc__)
    parser.add_argument("--name", default="testworker-python")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--protocol-version", type=int, action="append", dest="versions")
    parser.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME)
    args = parser.parse_args(argv)
    worker = build(
        args.name,
        max_in_flight=args.max_in_flight,
        versions=args.versions or list(PROTOCOL_VERSIONS),
        max_frame=args.max_frame,
    )
    worker.run()


if __name__ == "__main__":
    main()
