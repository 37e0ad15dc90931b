"""Spans by the OpenTelemetry messaging conventions, for in-process handlers."""

from __future__ import annotations

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import crosswire
from crosswire import Event, Reject

from .conftest import Recorded


def _tp(span: object) -> str:
    sc = span.get_span_context()  # type: ignore[attr-defined]
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-01"


async def test_submit_in_a_span_gives_one_trace_producer_then_consumer(recorded: Recorded) -> None:
    app = crosswire.App("shop")
    seen: list[trace.SpanContext] = []

    @app.handler("order.created")
    async def handle(event: Event[bytes]) -> None:
        seen.append(trace.get_current_span().get_span_context())

    tracer = recorded.provider.get_tracer("test")
    async with crosswire.Node(app) as node:
        with tracer.start_as_current_span("checkout") as caller:
            event = await node.submit("order.created", b"x", correlation_id="c-1")
        await node.wait_idle(5)

    producer = recorded.one("send order.created")
    consumer = recorded.one("process order.created")
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None and producer.parent.span_id == caller.get_span_context().span_id
    assert event.traceparent == _tp(producer)  # the producer's context is in the envelope
    assert consumer.context.trace_id == caller.get_span_context().trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    attrs = consumer.attributes or {}
    assert attrs["messaging.system"] == "crosswire"
    assert attrs["messaging.destination.name"] == "order.created"
    assert attrs["messaging.message.id"] == event.id
    assert attrs["messaging.consumer.group.name"] == "shop.handle"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.message.conversation_id"] == "c-1"
    assert attrs["crosswire.attempt"] == 1 and attrs["crosswire.binding"] == "handle"
    assert attrs["crosswire.runtime"] == "python"
    # the handler runs inside the CONSUMER span
    assert seen and seen[0].span_id == consumer.context.span_id


async def test_without_a_current_span_the_events_own_traceparent_is_the_parent(recorded: Recorded) -> None:
    app = crosswire.App("shop")

    @app.handler("order.created")
    async def handle(event: Event[bytes]) -> None:
        pass

    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with crosswire.Node(app) as node:
        await node.submit_events([Event.new("order.created", b"", traceparent=given)])
        await node.wait_idle(5)
    producer = recorded.one("send order.created")
    assert f"{producer.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert producer.parent is not None and f"{producer.parent.span_id:016x}" == "b7ad6b7169203331"


async def test_a_retried_and_a_dead_lettered_attempt_are_span_events(recorded: Recorded) -> None:
    app = crosswire.App("shop")
    calls = 0

    @app.handler("order.flaky", retry=crosswire.Retry(max_attempts=2, initial=0.01, jitter=0.0))
    async def flaky(event: Event[bytes]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    @app.handler("order.bad")
    async def bad(event: Event[bytes]) -> None:
        raise Reject("no such order")

    async with crosswire.Node(app) as node:
        await node.submit("order.flaky", b"")
        await node.submit("order.bad", b"")
        await node.wait_idle(5)

    flaky_spans = sorted(recorded.named("process order.flaky"), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {})["crosswire.attempt"] for s in flaky_spans] == [1, 2]
    first, second = flaky_spans
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "handler_error"
    assert [e.name for e in first.events] == ["retry"]
    assert [e.name for e in second.events] == ["dead_letter"]
    assert first.context.trace_id == second.context.trace_id  # one trace across attempts
    rejected = recorded.one("process order.bad")
    assert (rejected.attributes or {})["error.type"] == "rejected"
    assert [e.name for e in rejected.events] == ["dead_letter"]


async def test_a_follow_up_gets_a_create_span_under_the_consumer(recorded: Recorded) -> None:
    app = crosswire.App("shop")

    @app.handler("order.created")
    async def validate(event: Event[bytes]) -> Event[bytes]:
        return Event.new("order.validated", b"v")

    @app.handler("order.validated")
    async def price(event: Event[bytes]) -> None:
        pass

    async with crosswire.Node(app) as node:
        await node.submit("order.created", b"")
        await node.wait_idle(5)

    first = recorded.one("process order.created")
    create = recorded.one("create order.validated")
    second = recorded.one("process order.validated")
    assert create.kind is SpanKind.PRODUCER
    assert create.parent is not None and create.parent.span_id == first.context.span_id
    assert second.parent is not None and second.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in second.links] == [create.context.span_id]
    assert len({s.context.trace_id for s in recorded.spans()}) == 1


async def test_no_sdk_provider_builds_no_trace_layer() -> None:
    app = crosswire.App("shop")

    @app.handler("order.created")
    async def handle(event: Event[bytes]) -> None:
        pass

    async with crosswire.Node(app) as node:
        assert node._tracing is None
        event = await node.submit("order.created", b"")
        await node.wait_idle(5)
    assert event.traceparent is None


def test_event_payload_untouched_by_tracing() -> None:
    # the envelope the handler gets differs only in its trace context
    event = Event.new("a.b", msgspec.msgpack.encode({"x": 1}), datacontenttype="application/msgpack")
    copy = msgspec.structs.replace(event, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert copy.data == event.data and copy.id == event.id


async def test_an_in_process_handlers_log_lines_carry_the_attempt(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    app = crosswire.App("shop")

    @app.handler("order.created")
    async def handle(event: Event[bytes]) -> None:
        logging.getLogger("shop.orders").warning("checking order")

    caplog.set_level(logging.INFO, logger="shop.orders")
    async with crosswire.Node(app) as node:
        event = await node.submit("order.created", b"", correlation_id="c-7")
        await node.wait_idle(5)
    consumer = recorded.one("process order.created")
    record = next(r for r in caplog.records if r.getMessage() == "checking order")
    assert record.trace_id == f"{consumer.context.trace_id:032x}"  # type: ignore[attr-defined]
    assert record.span_id == f"{consumer.context.span_id:016x}"  # type: ignore[attr-defined]
    assert record.event_id == event.id and record.correlation_id == "c-7"  # type: ignore[attr-defined]
    assert record.binding == "handle" and record.attempt == 1  # type: ignore[attr-defined]


def test_with_tracing_off_the_event_path_imports_no_tracing_code() -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, os, sys
        for k in list(os.environ):
            if k.startswith("OTEL_"):
                del os.environ[k]
        import crosswire

        app = crosswire.App("off")

        @app.handler("t.x")
        async def h(event: crosswire.Event) -> crosswire.Event:
            return crosswire.Event.new("t.y", b"")

        @app.handler("t.y")
        async def y(event: crosswire.Event) -> None:
            pass

        async def main() -> None:
            async with crosswire.Node(app) as node:
                event = await node.submit("t.x", b"")
                await node.wait_idle(5)
                assert node._tracing is None and event.traceparent is None

        asyncio.run(main())
        loaded = [m for m in ("opentelemetry.sdk", "crosswire._observability.export",
                              "crosswire._observability.otlp", "crosswire._observability.tree")
                  if m in sys.modules]
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"tracing off, yet the event path imported {out.stdout.strip()}"


async def test_a_sync_handler_runs_in_its_attempts_span(recorded: Recorded, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    app = crosswire.App("shop")
    seen: list[trace.SpanContext] = []

    @app.handler("order.synced")
    def handle(event: Event[bytes]) -> None:  # runs in the node's thread pool
        seen.append(trace.get_current_span().get_span_context())
        logging.getLogger("shop.sync").warning("in a thread")

    caplog.set_level(logging.INFO, logger="shop.sync")
    async with crosswire.Node(app) as node:
        event = await node.submit("order.synced", b"")
        await node.wait_idle(5)
    consumer = recorded.one("process order.synced")
    assert seen and seen[0].span_id == consumer.context.span_id
    record = next(r for r in caplog.records if r.getMessage() == "in a thread")
    assert record.event_id == event.id  # type: ignore[attr-defined]
