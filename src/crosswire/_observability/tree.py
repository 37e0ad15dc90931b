"""One trace as a tree in the terminal, from the spans the node exports.

::

    recorder = SpanRecorder()                  # a span processor: keeps finished spans
    provider.add_span_processor(recorder)
    ...
    console.print(trace_tree(recorder.trace(trace_id)))

Each line: the span's name, its runtime (python, go, rust; the node's own spans say
``node``), its duration, and its outcome (``ok``, the error type, ``retry`` or
``dead letter`` from its events). Children are ordered by start time; a span whose
parent was not recorded hangs under the root.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

__all__ = ["SpanRecorder", "record_traces", "trace_tree"]


class SpanRecorder(SpanProcessor):
    """A span processor keeping the last ``limit`` finished spans (thread-safe)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._spans: collections.deque[Any] = collections.deque(maxlen=limit)
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self._spans.append(span)

    def spans(self) -> list[Any]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: int | str) -> list[Any]:
        """The recorded spans of one trace (id as int or 32 hex characters)."""
        wanted = int(trace_id, 16) if isinstance(trace_id, str) else trace_id
        return [s for s in self.spans() if s.context.trace_id == wanted]


def _runtime(span: Any) -> str:
    attrs = span.attributes or {}
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", "") or ""
    worker = scope.removeprefix("crosswire.worker.") if scope.startswith("crosswire.worker.") else None
    return str(attrs.get("crosswire.worker.runtime") or attrs.get("crosswire.runtime") or worker or "node")


def _outcome(span: Any) -> str:
    names = [e.name for e in span.events]
    attrs = span.attributes or {}
    if "dead_letter" in names:
        return f"[red]dead letter[/] ({attrs.get('error.type', 'error')})"
    if "retry" in names:
        return f"[yellow]retry[/] ({attrs.get('error.type', 'error')})"
    if span.status.status_code.name == "ERROR":
        return f"[red]{attrs.get('error.type', 'error')}[/]"
    return "[green]ok[/]"


def _label(span: Any) -> str:
    ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    attrs = span.attributes or {}
    attempt = f" attempt {attrs['crosswire.attempt']}" if "crosswire.attempt" in attrs else ""
    return f"[bold]{span.name}[/]{attempt}  [cyan]{_runtime(span)}[/]  {ms:.2f} ms  {_outcome(span)}"


def trace_tree(spans: Sequence[Any], title: str = "trace") -> Any:
    """A rich ``Tree`` of ``spans`` (one trace)."""
    from rich.tree import Tree

    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[Any]] = collections.defaultdict(list)
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        children[parent].append(span)
    trace_id = f"{spans[0].context.trace_id:032x}" if spans else "-"
    root = Tree(f"{title} {trace_id} ({len(spans)} spans)")

    def add(node: Any, parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            branch = node.add(_label(span))
            if depth < 64:
                add(branch, span.context.span_id, depth + 1)

    add(root, None, 0)
    return root


def record_traces(service: str) -> SpanRecorder:
    """Trace this process and keep its spans: the OTLP exporter too when the ``OTEL_*``
    variables ask for one (:func:`crosswire._observability.otlp.configure`), else an SDK
    provider of its own. Returns the recorder the tree is drawn from."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from .otlp import configure

    provider = configure(service)
    if provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            trace.set_tracer_provider(provider)
    recorder = SpanRecorder()
    provider.add_span_processor(recorder)
    return recorder
