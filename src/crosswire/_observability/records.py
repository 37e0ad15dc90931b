"""The spans a worker ships back in ``result.spans`` (spec/protocol.md, "Spans and logs").

Plain data, no OpenTelemetry import: the frame codec and the core types use these;
:mod:`crosswire._observability.export` turns them into exported spans.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["AttrValue", "SpanEventRecord", "SpanKindCode", "SpanRecord", "SpanStatusCode"]

AttrValue = str | int | float | bool
_Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
_Hex16 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{16}$")]
_Name = Annotated[str, msgspec.Meta(max_length=256)]
_U64 = Annotated[int, msgspec.Meta(ge=0)]


class SpanKindCode:
    """``kind`` values (those of OpenTelemetry's ``SpanKind``)."""

    INTERNAL = 0
    SERVER = 1
    CLIENT = 2
    PRODUCER = 3
    CONSUMER = 4


class SpanStatusCode:
    UNSET = 0
    OK = 1
    ERROR = 2


class SpanEventRecord(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: _Name
    time_ns: _U64
    attrs: dict[str, AttrValue] = {}


class SpanRecord(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One finished span from worker code. ``parent_id`` absent: a child of the span the
    delivered ``traceparent`` names (the node's CONSUMER span of the attempt)."""

    trace_id: _Hex32
    span_id: _Hex16
    parent_id: _Hex16 | None = None
    name: _Name
    kind: Annotated[int, msgspec.Meta(ge=0, le=4)] = SpanKindCode.INTERNAL
    start_ns: _U64
    end_ns: _U64
    attrs: dict[str, AttrValue] = {}
    events: list[SpanEventRecord] = []
    status: Annotated[int, msgspec.Meta(ge=0, le=2)] = SpanStatusCode.UNSET
    status_message: str | None = None
