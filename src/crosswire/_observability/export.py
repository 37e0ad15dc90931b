"""Spans from worker processes, exported by the node (the one collector).

A worker's SDK ships the spans of an attempt in ``result.spans``
(:class:`~crosswire._observability.records.SpanRecord`); the trace policy hands them
here with the attempt's CONSUMER span, and they go to the node's span processors as
if the node had recorded them — through the same exporter, with the node's resource.
Spans of another trace than the attempt's are dropped (a worker cannot write into
traces it was not handed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .._envelope import Event
from .._types import Outcome
from .records import SpanKindCode, SpanRecord, SpanStatusCode

__all__ = ["export_worker_spans", "timing_span"]

log = logging.getLogger("crosswire.tracing")

_KINDS = {
    SpanKindCode.INTERNAL: "INTERNAL",
    SpanKindCode.SERVER: "SERVER",
    SpanKindCode.CLIENT: "CLIENT",
    SpanKindCode.PRODUCER: "PRODUCER",
    SpanKindCode.CONSUMER: "CONSUMER",
}


def export_worker_spans(provider: Any, records: Sequence[SpanRecord], consumer: Any, runtime: str = "worker") -> int:
    """Hand ``records`` to ``provider``'s span processors; returns how many were exported.

    :param consumer: the attempt's CONSUMER span context (the default parent).
    :param runtime: the worker's runtime, naming the instrumentation scope
        (``crosswire.worker.go``).
    """
    processor = getattr(provider, "_active_span_processor", None)
    if processor is None or not consumer.trace_flags.sampled:
        return 0
    from opentelemetry.sdk.trace import Event as SpanEvent
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    resource = provider.resource
    flags = TraceFlags(TraceFlags.SAMPLED)
    exported = 0
    for record in records:
        trace_id = int(record.trace_id, 16)
        if trace_id != consumer.trace_id:
            log.debug("dropped worker span %r of another trace", record.name)
            continue
        parent_id = int(record.parent_id, 16) if record.parent_id else consumer.span_id
        status = (
            Status(StatusCode.ERROR, record.status_message)
            if record.status == SpanStatusCode.ERROR
            else Status(StatusCode.OK)
            if record.status == SpanStatusCode.OK
            else Status(StatusCode.UNSET)
        )
        span = ReadableSpan(
            name=record.name,
            context=SpanContext(trace_id, int(record.span_id, 16), is_remote=False, trace_flags=flags),
            parent=SpanContext(trace_id, parent_id, is_remote=parent_id == consumer.span_id, trace_flags=flags),
            resource=resource,
            attributes=dict(record.attrs),
            events=[SpanEvent(e.name, dict(e.attrs), timestamp=e.time_ns) for e in record.events],
            kind=getattr(SpanKind, _KINDS.get(record.kind, "INTERNAL")),
            instrumentation_scope=InstrumentationScope(f"crosswire.worker.{runtime}"),
            status=status,
            start_time=record.start_ns,
            end_time=max(record.end_ns, record.start_ns),
        )
        processor.on_end(span)
        exported += 1
    return exported


def timing_span(tracer: Any, event: Event[Any], outcome: Outcome, *, binding: str, runtime: str) -> None:
    """One span for a worker attempt from its ``RESULT`` timings (a worker whose SDK
    ships no spans of its own)."""
    from opentelemetry.trace import Status, StatusCode

    span = tracer.start_span(
        f"handle {event.type}",
        start_time=outcome.start_ns,
        attributes={"crosswire.binding": binding, "crosswire.worker.runtime": runtime},
    )
    if outcome.error is not None:
        span.set_status(Status(StatusCode.ERROR, outcome.error.message))
        span.set_attribute("error.type", outcome.error.code.value)
    span.end(end_time=outcome.start_ns + outcome.duration_ns)
