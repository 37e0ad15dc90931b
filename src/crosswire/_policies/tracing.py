"""The trace policy: OpenTelemetry spans by the messaging semantic conventions.

- ``submit``/``submit_events``: a PRODUCER span ``send <type>`` per event, a child of
  the caller's current span (or, with none, of the ``traceparent`` the event already
  carries); its context is injected into the event (``traceparent``/``tracestate``).
- every attempt: a CONSUMER span ``process <type>``, a child of the event's creation
  context and linked to it (single-message processing), with ``messaging.*``,
  ``crosswire.attempt``/``binding``/``runtime`` and, on failure, ``error.type``; the
  retry decision is a span event (``retry`` or ``dead_letter``).
- every follow-up a handler emits: a PRODUCER span ``create <type>``, a child of the span
  that emitted it (the worker's, when its SDK says so, else the CONSUMER span).
- work in a worker process: the spans its SDK shipped in ``RESULT`` are exported by the
  node (:mod:`crosswire._observability.export`); a worker that ships none gets one span
  from its ``RESULT`` timings.

The handler sees the CONSUMER span as its parent: in-process as the current span, in a
worker as the delivered event's ``traceparent``.

Enabled only when an OpenTelemetry SDK tracer provider is installed (``crosswire run``
installs one from the ``OTEL_*`` variables); with the API's default provider the node
builds no trace layer and ``submit`` takes no tracing branch: no per-event cost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from .._envelope import Event
from .._types import Attempt, Handler, Outcome

__all__ = ["NodeTracing", "Tracing", "node_tracing", "tracing_if_configured"]

_log = logging.getLogger("crosswire.tracing")


def traceparent_of(span_context: Any) -> str:
    """The W3C ``traceparent`` naming ``span_context`` (flags: the sampled bit, which every
    trace-context level-1 parser reads the same)."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags) & 1:02x}"


def _tracestate_of(span_context: Any) -> str | None:
    header = span_context.trace_state.to_header() if span_context.trace_state else ""
    return header or None


def creation_context(event: Event[Any]) -> Any:
    """The OpenTelemetry context an event's ``traceparent``/``tracestate`` carry (empty if none)."""
    global _propagator
    if _propagator is None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        _propagator = TraceContextTextMapPropagator()
    carrier: dict[str, str] = {}
    if event.traceparent:
        carrier["traceparent"] = event.traceparent
        if event.tracestate:
            carrier["tracestate"] = event.tracestate
    return _propagator.extract(carrier)


_propagator: Any = None


class NodeTracing:
    """A node's tracer: PRODUCER spans on submit, and one :class:`Tracing` per binding.

    :param system: ``messaging.system`` (``nats`` on JetStream, ``crosswire`` in memory).
    """

    def __init__(self, tracer: Any, provider: Any, *, node: str, system: str) -> None:
        self.tracer = tracer
        self.provider = provider
        self.node = node
        self.system = system

    def binding(self, name: str, runtime: str, handler: object = None) -> Tracing:
        """The trace policy of one binding; ``handler`` tells a worker's (a ``WorkerPool``
        method) from an in-process function."""
        worker = type(getattr(handler, "__self__", None)).__name__ == "WorkerPool"
        return Tracing(self.tracer, self, binding=name, runtime=runtime, group=f"{self.node}.{name}", worker=worker)

    @contextmanager
    def sending(self, events: Sequence[Event[Any]]) -> Iterator[None]:
        """PRODUCER spans around a publish: started and injected before, ended after."""
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        current = context.get_current()
        has_current = trace.get_current_span(current).get_span_context().is_valid
        spans = []
        for event in events:
            parent = current if has_current or not event.traceparent else creation_context(event)
            span = self.tracer.start_span(
                f"send {event.type}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes=self._message_attributes(event, "send"),
            )
            sc = span.get_span_context()
            if sc.is_valid:
                event.traceparent = traceparent_of(sc)
                event.tracestate = _tracestate_of(sc)
            spans.append(span)
        try:
            yield
        except BaseException as exc:
            for span in spans:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            for span in spans:
                span.end()

    def producing(
        self, publish: Callable[[Sequence[Event[Any]], list[tuple[str, str]], list[int]], Awaitable[None]]
    ) -> Callable[[Sequence[Event[Any]], list[tuple[str, str]], list[int]], Awaitable[None]]:
        """``publish`` inside :meth:`sending` (the node's submit path, when it traces)."""

        async def traced(events: Sequence[Event[Any]], pairs: list[tuple[str, str]], sizes: list[int]) -> None:
            with self.sending(events):
                await publish(events, pairs, sizes)

        return traced

    def _message_attributes(self, event: Event[Any], operation: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
            "messaging.destination.name": event.type,
            "messaging.message.id": event.id,
        }
        if event.correlationid:
            attributes["messaging.message.conversation_id"] = event.correlationid
        if event.data is not None:
            attributes["messaging.message.body.size"] = len(event.data)
        return attributes


class Tracing:
    """The trace policy of one binding (a :class:`~crosswire._types.Layer`)."""

    __slots__ = ("binding", "group", "node", "runtime", "tracer", "worker")

    def __init__(
        self,
        tracer: Any,
        node: NodeTracing | None = None,
        *,
        binding: str = "",
        runtime: str = "python",
        group: str | None = None,
        worker: bool | None = None,
    ) -> None:
        self.tracer = tracer
        self.node = node or NodeTracing(tracer, None, node="crosswire", system="crosswire")
        self.binding = binding
        self.runtime = runtime
        self.group = group if group is not None else binding
        #: a worker's binding: spans come from its RESULT (or its timings)
        self.worker = worker if worker is not None else runtime != "python"

    def layer(self, inner: Handler) -> Handler:
        from opentelemetry import trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        from .._observability.export import export_worker_spans, timing_span
        from .._observability.logs import attempt_fields, install_record_fields

        install_record_fields()

        tracer, node = self.tracer, self.node
        binding, runtime, group, worker = self.binding, self.runtime, self.group, self.worker

        async def traced(attempt: Attempt) -> Outcome:
            event = attempt.event
            creation = creation_context(event)
            created = trace.get_current_span(creation).get_span_context()
            attributes = node._message_attributes(event, "process")
            attributes["messaging.consumer.group.name"] = group
            attributes["crosswire.binding"] = binding or attempt.binding
            attributes["crosswire.runtime"] = runtime
            attributes["crosswire.attempt"] = attempt.number
            with tracer.start_as_current_span(
                f"process {event.type}",
                context=creation,
                kind=SpanKind.CONSUMER,
                links=[Link(created)] if created.is_valid else None,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                sc = span.get_span_context()
                fields = {"event_id": event.id, "binding": binding or attempt.binding, "attempt": attempt.number}
                if event.correlationid:
                    fields["correlation_id"] = event.correlationid
                token = attempt_fields.set(fields)  # for the handler's log lines
                # the handler's parent is this span: a worker reads it from the envelope
                seen = msgspec.structs.replace(event, traceparent=traceparent_of(sc), tracestate=_tracestate_of(sc))
                try:
                    outcome = await inner(
                        Attempt(event=seen, binding=attempt.binding, number=attempt.number, deadline=attempt.deadline)
                    )
                finally:
                    attempt_fields.reset(token)
                if outcome.spans:
                    try:
                        export_worker_spans(node.provider, outcome.spans, sc, runtime)
                    except Exception:  # a worker's bad span must not fail the attempt
                        _log.exception("binding %s: exporting the worker's spans failed", binding)
                elif worker and outcome.start_ns and outcome.duration_ns:  # a worker that ships no spans
                    timing_span(tracer, event, outcome, binding=binding, runtime=runtime)
                if outcome.emitted:
                    outcome = self._created(outcome, sc)
                error = outcome.error
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, error.message))
                    span.set_attribute("error.type", error.code.value)
                    if error.runtime:
                        span.set_attribute("crosswire.error.runtime", error.runtime)
                    if outcome.retry_delay is not None:
                        span.add_event(
                            "retry",
                            {"crosswire.retry.delay_s": outcome.retry_delay, "crosswire.attempt": attempt.number},
                        )
                    else:
                        span.add_event(
                            "dead_letter",
                            {"error.type": error.code.value, "crosswire.attempts": attempt.number},
                        )
                return outcome

        return traced

    def _created(self, outcome: Outcome, consumer: Any) -> Outcome:
        """A PRODUCER ``create`` span per emitted follow-up, injected into it."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        emitted = []
        for e in outcome.emitted:
            parent: Any = None  # the current (CONSUMER) span
            if e.traceparent:
                claimed = trace.get_current_span(creation_context(e)).get_span_context()
                if claimed.is_valid and claimed.trace_id == consumer.trace_id and claimed.span_id != consumer.span_id:
                    parent = creation_context(e)  # a span inside the worker emitted it
            span = self.tracer.start_span(
                f"create {e.type}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes=self.node._message_attributes(e, "create"),
            )
            sc = span.get_span_context()
            span.end()
            emitted.append(msgspec.structs.replace(e, traceparent=traceparent_of(sc), tracestate=_tracestate_of(sc)))
        return msgspec.structs.replace(outcome, emitted=tuple(emitted))


def _sdk_provider() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
        return None
    provider = trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return provider


def node_tracing(node: str, transport: object) -> NodeTracing | None:
    """A node's tracing if an SDK tracer provider is installed, else ``None`` (no cost)."""
    provider = _sdk_provider()
    if provider is None and (
        "OTEL_EXPORTER_OTLP_ENDPOINT" in os.environ or "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in os.environ
    ):
        from .._exceptions import ConfigurationError
        from .._observability.otlp import configure

        try:
            provider = configure(node)
        except ConfigurationError as exc:
            _log.warning("not tracing: %s", exc)
    if provider is None:
        return None
    system = "nats" if "JetStream" in type(transport).__name__ else "crosswire"
    return NodeTracing(provider.get_tracer("crosswire"), provider, node=node, system=system)


def tracing_if_configured() -> Tracing | None:
    """A :class:`Tracing` policy if an SDK tracer provider is installed, else ``None``."""
    provider = _sdk_provider()
    if provider is None:
        return None
    tracer = provider.get_tracer("crosswire")
    return Tracing(tracer, NodeTracing(tracer, provider, node="crosswire", system="crosswire"))
