"""Typed payloads in the Python worker SDK: ``async def h(ctx, event: Event[Order])``.

The decoding is the node's own (:mod:`crosswire._function`), so a payload means the
same in a worker as in an in-process handler (spec/payloads.md): JSON or MessagePack by
``datacontenttype``; a payload that does not decode is ``invalid_argument``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_args, get_origin, get_type_hints

import msgspec

from .._envelope import Event
from .._errorinfo import ErrorCode, ErrorInfo
from .._exceptions import ConfigurationError
from .._function import PayloadDecoder

__all__ = ["PayloadDecoder", "decode_payload", "payload_decoder"]


def payload_decoder(fn: Callable[..., Any]) -> PayloadDecoder | None:
    """A decoder for the ``T`` of the event parameter's ``Event[T]`` annotation (the
    handler's second parameter), or None when it is a plain ``Event``.

    :raises ConfigurationError: the annotations do not resolve, or ``T`` is unsupported.
    """
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2:
        return None
    try:
        hint = get_type_hints(fn).get(params[1].name)
    except Exception as exc:  # unresolvable forward references
        raise ConfigurationError(f"cannot resolve annotations of {fn.__qualname__}: {exc}") from None
    if get_origin(hint) is not Event:
        return None
    (arg,) = get_args(hint)
    return None if arg is Any else PayloadDecoder(arg)


def decode_payload(decoder: PayloadDecoder, event: Event[Any]) -> ErrorInfo | None:
    """Attach the decoded payload to ``event``; the ``invalid_argument`` error if it fails."""
    try:
        event.with_payload(decoder(event))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        what = getattr(decoder.tp, "__name__", decoder.tp)
        return ErrorInfo.of(ErrorCode.INVALID_ARGUMENT, f"payload does not decode as {what}: {exc}")
    return None
