"""Schema versions at the worker boundary (spec/protocol.md, "Schema versions").

Each SDK's conformance worker is built against version 1 of the test order schema: its
``test.versioned`` handler declares ``urn:crosswire:schema:crosswire.test.Order:1`` in
hello ``schemas`` (Go ``crosswire.Accepts``, Rust ``Worker::accepts``, Python
``accepts=``). The node must refuse it any other version without delivering it, and say
at the handshake when the app produces a version the worker cannot read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
import pytest

import crosswire
from crosswire import ErrorCode
from crosswire._types import Attempt
from crosswire._workers.frames import Hello
from crosswire._workers.hub import check_hello
from crosswire._workers.pool import WorkerPool
from crosswire._workers.schemas import accepted_uris, handshake_warnings, produced_schemas
from crosswire.schema import new_event, schema

PoolFactory = Callable[..., WorkerPool]

V1 = "urn:crosswire:schema:crosswire.test.Order:1"


@schema("crosswire.test.Order", version=1)
class OrderV1(msgspec.Struct):
    order_id: int


@schema("crosswire.test.Order", version=2)
class OrderV2(msgspec.Struct):
    order_id: int
    currency: str


def _app(argv: list[str], runtime: str, **options: object) -> tuple[crosswire.App, str]:
    name = f"testworker-{runtime}"
    app = crosswire.App("schemas")
    app.worker(
        name,
        command=[*argv, "--name", name],
        timeout=5.0,
        retry=crosswire.Retry(max_attempts=3, initial=0.01),
        **options,  # type: ignore[arg-type]
    )
    return app, name


async def test_an_event_of_another_schema_version_is_dead_lettered_undelivered(
    runtime: str, worker_argv: list[str]
) -> None:
    app, name = _app(worker_argv, runtime)
    async with crosswire.Node(app) as node:
        newer = new_event("test.versioned", OrderV2(order_id=7, currency="EUR"), source="/test")
        older = new_event("test.versioned", OrderV1(order_id=8), source="/test")
        plain = crosswire.Event.new("test.versioned", b"", source="/test")  # no dataschema: not checked
        await node.submit_events([newer, older, plain])
        await asyncio.wait_for(node.wait_idle(), 20)
        stats = node.statistics()
        letters = await node.dead_letters.list()
    worker = stats.workers[name]
    assert (worker.delivered, worker.refused) == (2, 1), "the refused event never reached the worker"
    binding = stats.bindings[f"{name}:test.versioned"]
    assert (binding.handled, binding.dead_lettered, binding.retried) == (2, 1, 0)
    assert [letter.event.id for letter in letters if letter.event is not None] == [newer.id]
    error = letters[0].error
    assert error.code is ErrorCode.INVALID_ARGUMENT and error.retryable is False
    assert error.runtime == "node"
    assert error.message == (
        f"event test.versioned carries schema crosswire.test.Order v2; worker {name!r} accepts crosswire.test.Order v1"
    )
    assert len(letters[0].attempts) == 1  # not retried


async def test_a_refused_event_does_not_wait_for_credit(runtime: str, make_pool: PoolFactory) -> None:
    pool = make_pool(runtime, "--max-in-flight", "1")
    await pool.start()
    name = pool.name

    def attempt(event: crosswire.Event[object]) -> Attempt:
        return Attempt(event=event, binding=f"{name}:{event.type}", number=1, deadline=time.monotonic() + 5)

    busy = asyncio.ensure_future(
        pool.handle(attempt(crosswire.Event.new("test.sleep", msgspec.msgpack.encode({"ms": 400}), source="/t")))
    )
    for _ in range(2000):  # until the sleep holds the one credit
        if pool.statistics().in_flight:
            break
        await asyncio.sleep(0.001)
    started = time.monotonic()
    outcome = await pool.handle(attempt(new_event("test.versioned", OrderV2(order_id=1, currency="EUR"), source="/t")))
    waited = time.monotonic() - started
    assert outcome.error is not None and outcome.error.code is ErrorCode.INVALID_ARGUMENT
    assert waited < 0.2, f"the refusal waited {waited:.3f} s for the credit of a delivery it never makes"
    assert (await busy).error is None
    stats = pool.statistics()
    assert (stats.delivered, stats.refused) == (1, 1)


@pytest.mark.parametrize("produced", [OrderV1, OrderV2])
async def test_the_handshake_warns_when_the_app_produces_a_version_the_worker_cannot_read(
    runtime: str, worker_argv: list[str], produced: type, caplog: pytest.LogCaptureFixture
) -> None:
    app, name = _app(worker_argv, runtime, handles={"test.versioned": produced, "test.echo": OrderV2})
    with caplog.at_level(logging.WARNING, logger=f"crosswire.worker.{name}"):
        async with crosswire.Node(app):
            pass
    warned = [r.getMessage() for r in caplog.records if "but the app produces" in r.getMessage()]
    if produced is OrderV1:
        assert warned == []  # test.echo declares no schemas: it reads anything
    else:
        assert warned == [
            f"worker {name!r} accepts [crosswire.test.Order v1] for test.versioned, "
            "but the app produces crosswire.test.Order v2"
        ]


def _hello(**fields: object) -> Hello:
    base: dict[str, object] = {
        "versions": [1],
        "name": "w",
        "runtime": "go",
        "types": ["order.validated", "order.*"],
        "max_in_flight": 1,
        "max_frame": 4096,
    }
    return Hello(**(base | fields))  # type: ignore[arg-type]


def test_a_hello_with_schemas_for_a_type_it_does_not_serve_is_rejected() -> None:
    assert check_hello(_hello(schemas={"order.validated": [V1], "order.*": []})) is None
    assert check_hello(_hello(schemas={"order.paid": [V1]})) == (
        "hello schemas: 'order.paid' is not one of the worker's types"
    )


def test_warnings_match_patterns_both_ways_and_name_every_missing_version() -> None:
    produces = produced_schemas([{"order.validated": OrderV2}, {"order.*": OrderV1, "order.paid": None}])
    hello = _hello(schemas={"order.*": [V1], "order.validated": []})
    assert handshake_warnings("w", hello, produces) == [
        "worker 'w' accepts [crosswire.test.Order v1] for order.*, but the app produces crosswire.test.Order v2",
        "worker 'w' accepts [] for order.validated, but the app produces crosswire.test.Order v2, "
        "crosswire.test.Order v1",
    ]
    assert handshake_warnings("w", _hello(), produces) == []  # no schemas: reads anything


def test_python_accepts_takes_uris_and_schema_types_and_refuses_the_rest() -> None:
    assert accepted_uris("t", [V1, OrderV2, V1]) == [V1, "urn:crosswire:schema:crosswire.test.Order:2"]
    with pytest.raises(crosswire.ConfigurationError, match="declares no schema"):
        accepted_uris("t", [int])
    with pytest.raises(crosswire.ConfigurationError, match="at most 16"):
        accepted_uris("t", [f"{V1}{i}" for i in range(17)])
    with pytest.raises(crosswire.ConfigurationError, match="1-1024"):
        accepted_uris("t", [""])
