"""The in-process adapter: a Python function as the innermost :data:`Handler`.

The function's first parameter annotation picks the payload type::

    async def h(event: Event[Order]) -> None      # event.payload is an Order
    def h(event: Event[dict[str, Any]]) -> None   # sync: runs in the node's thread pool
    async def h(event: Event) -> None             # no payload decoding

``data`` is decoded with msgspec by ``datacontenttype`` (JSON for JSON types, else
MessagePack); a payload that does not decode is ``invalid_argument`` (never retried).
A handler may return follow-up events (an ``Event`` or a list of them); they are
submitted before the attempt is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, get_args, get_origin, get_type_hints

import msgspec

from ._envelope import Event
from ._errorinfo import ErrorCode, ErrorInfo
from ._exceptions import ConfigurationError
from ._jsonform import is_json_type
from ._signals import error_info_from_exception
from ._types import OK, Attempt, Handler, Outcome

__all__ = ["PayloadDecoder", "function_handler", "payload_type"]

HandlerFunction = Callable[[Event[Any]], Any]


def payload_type(fn: Callable[..., Any]) -> Any:
    """The ``T`` of the first parameter's ``Event[T]`` annotation, or ``None``.

    :raises ConfigurationError: if the function does not take exactly one parameter.
    """
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) != 1:
        raise ConfigurationError(
            f"handler {getattr(fn, '__qualname__', fn)!r} must take exactly one required argument "
            f"(the event), it takes {len(params)}"
        )
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # unresolvable forward references
        raise ConfigurationError(f"cannot resolve annotations of {fn.__qualname__}: {exc}") from None
    hint = hints.get(params[0].name)
    if hint is None or hint is Event:
        return None
    if get_origin(hint) is Event:
        (arg,) = get_args(hint)
        return None if arg is Any else arg
    raise ConfigurationError(f"the parameter of {fn.__qualname__} must be annotated Event or Event[T], not {hint!r}")


class PayloadDecoder:
    """Decodes an event's data into a handler's payload type by its content type (JSON for
    JSON types, else MessagePack); shared by in-process handlers and the Python worker SDK."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.raw = tp is bytes
        if not self.raw:
            try:
                self.msgpack = msgspec.msgpack.Decoder(tp)
                self.json = msgspec.json.Decoder(tp)
            except TypeError as exc:
                raise ConfigurationError(f"payload type {tp!r} is not supported: {exc}") from None

    def __call__(self, event: Event[Any]) -> Any:
        data = event.data
        if self.raw:
            return data if data is not None else b""
        if data is None:
            raise msgspec.ValidationError("the event has no data")
        if is_json_type(event.datacontenttype):
            return self.json.decode(data)
        return self.msgpack.decode(data)


def function_handler(fn: HandlerFunction, *, executor: Executor | None = None) -> Handler:
    """Adapt ``fn`` (async or sync) into a :data:`Handler` that never raises."""
    tp = payload_type(fn)
    decode = PayloadDecoder(tp) if tp is not None else None
    is_async = inspect.iscoroutinefunction(fn)

    async def call(attempt: Attempt) -> Outcome:
        event = attempt.event
        if decode is not None:
            try:
                event.with_payload(decode(event))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                return Outcome(
                    error=ErrorInfo.of(
                        ErrorCode.INVALID_ARGUMENT,
                        f"payload does not decode as {getattr(tp, '__name__', tp)}: {exc}",
                    )
                )
        try:
            if is_async:
                result = await fn(event)
            else:
                # in the attempt's context: the trace span and log fields reach the thread
                run = contextvars.copy_context().run
                result = await asyncio.get_running_loop().run_in_executor(executor, run, fn, event)
        except Exception as exc:
            return Outcome(error=error_info_from_exception(exc))
        if result is None:
            return OK  # timings are the settler's and the trace span's: in process they add nothing
        emitted = _as_events(result)
        if emitted is None:
            return Outcome(
                error=ErrorInfo.of(
                    ErrorCode.INTERNAL,
                    f"handler returned {type(result).__name__}; return None, an Event or a list of Events",
                )
            )
        return Outcome(emitted=emitted)

    return call


def _as_events(result: Any) -> tuple[Event[Any], ...] | None:
    if isinstance(result, Event):
        return (result,)
    if isinstance(result, (list, tuple)) and all(isinstance(e, Event) for e in result):
        return tuple(result)
    return None
