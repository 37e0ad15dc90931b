"""OpenTelemetry spans: one per attempt, in the trace of the event's traceparent
(more in tests/observability/test_tracing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crosswire import App, Event, Node, Reject, Retry
from crosswire._policies.tracing import Tracing, tracing_if_configured

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    original = trace._TRACER_PROVIDER  # the API allows setting the global provider once
    trace._TRACER_PROVIDER = provider
    try:
        yield exporter
    finally:
        trace._TRACER_PROVIDER = original


def test_tracing_is_off_without_an_sdk_provider() -> None:
    assert tracing_if_configured() is None


async def test_spans_per_attempt_continue_the_events_trace(exporter: InMemorySpanExporter) -> None:
    assert isinstance(tracing_if_configured(), Tracing)
    app = App("traced")
    seen_in_handler: list[str] = []

    @app.handler("t.traced", retry=Retry(max_attempts=2, initial=0.001))
    async def handle(event: Event[Any]) -> None:
        span = trace.get_current_span()
        seen_in_handler.append(format(span.get_span_context().trace_id, "032x"))
        if event.attempt == 1:
            raise RuntimeError("first attempt fails")
        if event.data == b"reject":
            raise Reject("no")

    async with Node(app) as node:
        event = Event.new("t.traced", b"ok", traceparent=PARENT)
        await node.submit_events([event])
        await node.wait_idle(5)
    producer = [s for s in exporter.get_finished_spans() if s.name == "send t.traced"]
    assert len(producer) == 1 and producer[0].parent is not None
    assert format(producer[0].parent.span_id, "016x") == "00f067aa0ba902b7"  # the event's own traceparent
    spans = [s for s in exporter.get_finished_spans() if s.name == "process t.traced"]
    assert len(spans) == 2  # one per attempt
    for span in spans:
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert span.parent is not None and span.parent.span_id == producer[0].context.span_id
        assert span.attributes is not None and span.attributes["messaging.message.id"] == event.id
    assert [s.attributes["crosswire.attempt"] for s in spans if s.attributes] == [1, 2]
    assert spans[0].status.status_code.name == "ERROR"
    assert spans[0].attributes is not None and spans[0].attributes["error.type"] == "handler_error"
    assert seen_in_handler == [TRACE_ID, TRACE_ID]  # handler code sees the trace context
