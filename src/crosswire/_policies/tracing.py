"""The trace policy: an OpenTelemetry span per attempt, parented by the event's
``traceparent``. Work done in worker processes is recorded from the handler timings
in the worker's ``RESULT`` (one collector; no exporters in Go or Rust).

Enabled only when an OpenTelemetry SDK tracer provider is installed; with the API's
default no-op provider the node skips this policy entirely (no per-event cost).
"""

from __future__ import annotations

from typing import Any

from .._types import Attempt, Handler, Outcome

__all__ = ["Tracing", "tracing_if_configured"]


class Tracing:
    """The trace policy's configuration: the OpenTelemetry tracer to record spans with."""

    __slots__ = ("tracer",)

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def layer(self, inner: Handler) -> Handler:
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        tracer, propagator = self.tracer, TraceContextTextMapPropagator()

        async def traced(attempt: Attempt) -> Outcome:
            event = attempt.event
            carrier = {}
            if event.traceparent:
                carrier["traceparent"] = event.traceparent
                if event.tracestate:
                    carrier["tracestate"] = event.tracestate
            parent = propagator.extract(carrier)
            with tracer.start_as_current_span(
                f"handle {event.type}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "crosswire.binding": attempt.binding,
                    "crosswire.attempt": attempt.number,
                    "cloudevents.event_id": event.id,
                    "cloudevents.event_type": event.type,
                },
            ) as span:
                outcome = await inner(attempt)
                if outcome.start_ns and outcome.duration_ns:
                    child = tracer.start_span(
                        f"work {event.type}",
                        start_time=outcome.start_ns,
                        attributes={"crosswire.binding": attempt.binding},
                    )
                    child.end(end_time=outcome.start_ns + outcome.duration_ns)
                if outcome.error is not None:
                    span.set_status(Status(StatusCode.ERROR, outcome.error.message))
                    span.set_attribute("crosswire.error_code", outcome.error.code.value)
                    if outcome.retry_delay is not None:
                        span.add_event("retry scheduled", {"crosswire.retry_delay": outcome.retry_delay})
                    else:
                        span.add_event("dead-lettered", {"crosswire.error_code": outcome.error.code.value})
                return outcome

        return traced


def tracing_if_configured() -> Tracing | None:
    """A :class:`Tracing` policy if an SDK tracer provider is installed, else ``None``."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
        return None
    provider = trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return Tracing(provider.get_tracer("crosswire"))
