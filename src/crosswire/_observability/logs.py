"""Worker log lines (``log`` frames, spec/protocol.md) written through the node's loggers.

Every line a worker's handler writes reaches the node over the protocol and leaves
it through ``crosswire.worker.<name>`` — one log stream, in the node's format (JSON
with ``--log-json``) — carrying ``worker``, ``runtime`` and ``pid``, and, for a line
written while handling a delivery, ``event_id``, ``correlation_id``, ``binding``,
``attempt``, ``trace_id`` and ``span_id`` (the handler's span, or the attempt's CONSUMER
span the delivered ``traceparent`` names).

Bounded: a message is cut at :data:`MAX_MESSAGE` characters, and at most
:data:`MAX_PER_SECOND` lines per second per worker are written (the rest are counted
and reported once a second).
"""

from __future__ import annotations

import contextvars
import logging
import time
import weakref
from typing import Any, Protocol

from .._subjects import subject_matches

__all__ = [
    "LEVELS",
    "MAX_MESSAGE",
    "MAX_PER_SECOND",
    "AttemptFields",
    "attempt_fields",
    "install_record_fields",
    "log_fields",
    "worker_log",
]

#: What an in-process handler's log lines carry while it handles an event (set by the
#: trace policy): event_id, correlation_id, binding, attempt.
attempt_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "crosswire_attempt_fields", default=None
)


class AttemptFields(logging.Filter):
    """A handler filter: a record written while a traced attempt runs in this process
    gets ``trace_id``, ``span_id``, ``event_id``, ``correlation_id``, ``binding`` and
    ``attempt`` (fields the record already has are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = attempt_fields.get()
        if fields is None:
            return True
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if not hasattr(record, "trace_id"):
            from opentelemetry import trace

            sc = trace.get_current_span().get_span_context()
            if sc.is_valid:
                record.trace_id, record.span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
        return True


_filter = AttemptFields()


def install_record_fields() -> None:
    """Add :class:`AttemptFields` to the root logger's handlers (once each)."""
    for handler in logging.getLogger().handlers:
        if _filter not in handler.filters:
            handler.addFilter(_filter)


MAX_MESSAGE = 16 * 1024
MAX_PER_SECOND = 1000
LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


class _Session(Protocol):
    name: str
    hello: Any
    _log: logging.Logger
    _in_flight: dict[int, Any]


class _Budget:
    __slots__ = ("dropped", "second", "used")

    def __init__(self) -> None:
        self.second = 0
        self.used = 0
        self.dropped = 0


_budgets: weakref.WeakKeyDictionary[Any, _Budget] = weakref.WeakKeyDictionary()


def log_fields(event: Any, worker: str, types: list[str]) -> dict[str, Any]:
    """The fields a line about ``event`` carries (``event`` may be ``None``)."""
    if event is None:
        return {}
    fields: dict[str, Any] = {"event_id": event.id, "attempt": event.attempt}
    if event.correlationid:
        fields["correlation_id"] = event.correlationid
    for pattern in types:
        if pattern == event.type or subject_matches(pattern, event.type):
            fields["binding"] = f"{worker}:{pattern}"
            break
    tp = event.traceparent
    if tp and len(tp) == 55:
        fields["trace_id"], fields["span_id"] = tp[3:35], tp[36:52]
    return fields


def worker_log(session: _Session, frame: Any) -> None:
    """Write one ``log`` frame through the session's logger."""
    logger = session._log
    level = LEVELS.get(frame.level.lower(), logging.INFO)
    if not logger.isEnabledFor(level):
        return
    budget = _budgets.get(session)
    if budget is None:
        budget = _budgets[session] = _Budget()
    now = int(time.monotonic())
    if now != budget.second:
        if budget.dropped:
            logger.warning("dropped %d log lines from the worker (more than %d/s)", budget.dropped, MAX_PER_SECOND)
        budget.second, budget.used, budget.dropped = now, 0, 0
    if budget.used >= MAX_PER_SECOND:
        budget.dropped += 1
        return
    budget.used += 1
    hello = session.hello
    ticket = session._in_flight.get(frame.id) if frame.id is not None else None
    extra: dict[str, Any] = {"worker": session.name, "runtime": hello.runtime, "pid": hello.pid}
    extra.update(log_fields(getattr(ticket, "event", None), session.name, hello.types))
    if frame.trace_id:
        extra["trace_id"] = frame.trace_id
        if frame.span_id:
            extra["span_id"] = frame.span_id
    if frame.attrs:
        extra["attrs"] = dict(frame.attrs)
    message = frame.msg if len(frame.msg) <= MAX_MESSAGE else frame.msg[:MAX_MESSAGE] + "…"
    record = logger.makeRecord(logger.name, level, "(worker)", 0, message, (), None, extra=extra)
    record.created = frame.time_ns / 1e9 if frame.time_ns else record.created
    record.msecs = (record.created % 1) * 1000
    logger.handle(record)
