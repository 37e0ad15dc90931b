"""The Python worker SDK's spans and logs (spec/protocol.md, "Spans and logs").

Each attempt runs inside a span ``handle <type>`` whose parent is the delivered
``traceparent`` (the node's CONSUMER span), made current for the handler: handler code
uses ``opentelemetry-api`` as usual (``trace.get_tracer(__name__).start_as_current_span``)
and its spans become children of it. A span processor collects the attempt's finished
spans in memory and the SDK ships them in ``result.spans``; the node exports them. With
``opentelemetry-sdk`` not installed the attempt span is still shipped (handler spans are
then no-ops).

Log records written while the worker runs go to the node as ``log`` frames, with the
delivery id and the current span's ids; the node writes them in its own format.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._envelope import Event
from .._errorinfo import ErrorCode
from .._exceptions import ClosedError
from .records import SpanEventRecord, SpanRecord, SpanStatusCode

__all__ = ["MAX_EVENTS", "MAX_SPANS", "WorkerObservability"]

MAX_SPANS = 256
MAX_EVENTS = 64

_bucket: contextvars.ContextVar[list[SpanRecord] | None] = contextvars.ContextVar("crosswire_spans", default=None)
_delivery: contextvars.ContextVar[int | None] = contextvars.ContextVar("crosswire_delivery", default=None)


def _attr(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _record(span: Any) -> SpanRecord:
    sc = span.context
    status = span.status.status_code.value if span.status is not None else 0
    return SpanRecord(
        trace_id=f"{sc.trace_id:032x}",
        span_id=f"{sc.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
        name=span.name[:256],
        kind=span.kind.value,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        attrs={k: _attr(v) for k, v in (span.attributes or {}).items()},
        events=[
            SpanEventRecord(
                name=e.name[:256], time_ns=e.timestamp, attrs={k: _attr(v) for k, v in e.attributes.items()}
            )
            for e in list(span.events)[:MAX_EVENTS]
        ],
        status=status,
        status_message=span.status.description if span.status is not None else None,
    )


def _collect(span: Any) -> None:
    """Keep a finished span in its attempt's bucket (found by context)."""
    bucket = _bucket.get()
    if bucket is not None and len(bucket) < MAX_SPANS:
        bucket.append(_record(span))


def _sdk_tracer() -> Any:
    """A tracer whose spans the collector sees: the installed SDK provider, or a new one."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    from opentelemetry.sdk.trace import SpanProcessor

    class Collector(SpanProcessor):
        def on_end(self, span: Any) -> None:
            _collect(span)

    provider.add_span_processor(Collector())
    return provider.get_tracer("crosswire.worker")


def _error_type(exc: BaseException) -> str:
    info = getattr(exc, "info", None)
    code = getattr(info, "code", None)
    if isinstance(code, ErrorCode):
        return code.value
    if isinstance(exc, TimeoutError) or not isinstance(exc, Exception):
        return ErrorCode.TIMEOUT.value  # cancelled by the deadline
    return ErrorCode.HANDLER_ERROR.value


class WorkerObservability:
    """Spans and logs of one Python worker process."""

    def __init__(self, worker: str, runtime: str = "python") -> None:
        self.worker = worker
        self.runtime = runtime
        self.pid = os.getpid()
        self._tracer: Any = None
        self._ready = False
        self._spans: dict[int, list[SpanRecord]] = {}
        self._handler: _LogForwarder | None = None

    def _tracer_once(self) -> Any:
        if not self._ready:
            self._tracer, self._ready = _sdk_tracer(), True
        return self._tracer

    def _attributes(self, event: Event[Any]) -> dict[str, Any]:
        return {
            "crosswire.worker.name": self.worker,
            "crosswire.worker.runtime": self.runtime,
            "process.pid": self.pid,
            "crosswire.attempt": event.attempt,
            "messaging.message.id": event.id,
        }

    async def run(self, fn: Callable[..., Awaitable[None]], ctx: Any, event: Event[Any]) -> None:
        """Run a handler inside its attempt span; its spans are kept for :meth:`take`."""
        delivery_token = _delivery.set(ctx.delivery_id)
        bucket: list[SpanRecord] = []
        bucket_token = _bucket.set(bucket)
        self._spans[ctx.delivery_id] = bucket
        try:
            tracer = self._tracer_once() if event.traceparent else None  # no trace: no SDK import
            if tracer is None:
                await self._run_plain(fn, ctx, event, bucket)
                return
            from opentelemetry.trace import Status, StatusCode

            from .._policies.tracing import creation_context

            with tracer.start_as_current_span(
                f"handle {event.type}",
                context=creation_context(event),
                attributes=self._attributes(event),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    await fn(ctx, event)
                except BaseException as exc:
                    span.set_attribute("error.type", _error_type(exc))
                    span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
                    raise
        finally:
            _bucket.reset(bucket_token)
            _delivery.reset(delivery_token)

    async def _run_plain(
        self, fn: Callable[..., Awaitable[None]], ctx: Any, event: Event[Any], bucket: list[SpanRecord]
    ) -> None:
        """No OpenTelemetry SDK here: the attempt span alone, built by hand."""
        tp = event.traceparent
        start = time.time_ns()
        error: BaseException | None = None
        try:
            await fn(ctx, event)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if tp and len(tp) == 55:
                attrs = self._attributes(event)
                if error is not None:
                    attrs["error.type"] = _error_type(error)
                bucket.append(
                    SpanRecord(
                        trace_id=tp[3:35],
                        span_id=os.urandom(8).hex(),
                        parent_id=tp[36:52],
                        name=f"handle {event.type}",
                        start_ns=start,
                        end_ns=time.time_ns(),
                        attrs=attrs,
                        status=SpanStatusCode.ERROR if error is not None else SpanStatusCode.UNSET,
                        status_message=str(error) if error is not None else None,
                    )
                )

    def take(self, delivery_id: int) -> list[SpanRecord]:
        """The spans of a finished attempt (the attempt span first), removed."""
        spans = self._spans.pop(delivery_id, [])
        if len(spans) > 1:
            spans.insert(0, spans.pop())  # the attempt span ends last
        return spans

    # --- logs -----------------------------------------------------------------------

    def start_logs(self, send: Callable[[Any], None]) -> None:
        """Forward log records to the node (``send`` a ``log`` frame) until :meth:`stop_logs`.

        A worker spawned by a node that exports (the ``OTEL_*`` variables it inherits)
        loads the OpenTelemetry SDK now, before ``ready``, rather than in its first attempt.
        """
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            self._tracer_once()
        self._handler = _LogForwarder(send)
        logging.getLogger().addHandler(self._handler)

    def stop_logs(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None


_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}


class _LogForwarder(logging.Handler):
    """Sends each record as a ``log`` frame: delivery id and span ids from the context."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__(logging.DEBUG)
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def _send_soon(self, frame: Any) -> None:
        with contextlib.suppress(ClosedError):
            self._send(frame)

    def emit(self, record: logging.LogRecord) -> None:
        from .._workers.frames import Log

        trace_id = span_id = None
        try:
            from opentelemetry import trace

            sc = trace.get_current_span().get_span_context()
            if sc.is_valid:
                trace_id, span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
        except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
            pass
        level = _LEVEL_NAMES.get(record.levelno, "error" if record.levelno > logging.ERROR else "info")
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            frame = Log(
                level=level,
                msg=message[: 16 * 1024],
                time_ns=int(record.created * 1e9),
                id=_delivery.get(),
                trace_id=trace_id,
                span_id=span_id,
                attrs={"logger": record.name[:256]},
            )
            if threading.get_ident() == self._thread:
                self._send(frame)
            else:  # a record from another thread: the connection belongs to the loop
                self._loop.call_soon_threadsafe(self._send_soon, frame)
        except (ClosedError, RuntimeError):  # closed, or the loop is gone
            pass
        except Exception:
            self.handleError(record)
