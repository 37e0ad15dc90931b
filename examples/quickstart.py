"""The smallest crosswire program: one typed handler, retries, a dead letter, a drain.

python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

import msgspec

import crosswire


class Order(msgspec.Struct):
    order_id: int
    qty: int


app = crosswire.App("orders")
reserved: list[int] = []


@app.handler("order.created", timeout=2.0, retry=crosswire.Retry(max_attempts=5, initial=0.01), concurrency=32)
async def reserve_stock(event: crosswire.Event[Order]) -> None:
    order = event.payload  # decoded into the annotated type
    if order.qty <= 0:
        raise crosswire.Reject(f"order {order.order_id}: quantity must be positive")  # dead-lettered at once
    if order.order_id % 3 == 0 and event.attempt == 1:
        raise ConnectionError("stock service blinked")  # retried with backoff
    reserved.append(order.order_id)


async def main() -> None:
    async with crosswire.Node(app) as node:  # memory transport; crosswire.JetStreamTransport() for durable
        for i in range(10):
            await node.submit("order.created", Order(order_id=i, qty=0 if i == 7 else 1), key=f"order-{i}")
        await node.wait_idle(10)
        stats = node.statistics().bindings["reserve_stock"]
        letters = await node.dead_letters.list()
    print(f"reserved {sorted(reserved)}")
    print(f"handled {stats.handled}, retried {stats.retried}, dead-lettered {stats.dead_lettered}")
    for letter in letters:
        print(f"dead letter {letter.id}: {letter.error.code.value}: {letter.error.message}")


if __name__ == "__main__":
    asyncio.run(main())
