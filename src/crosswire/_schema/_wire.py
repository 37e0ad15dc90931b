"""Schema versions on the wire: ``dataschema`` on the events a producer writes, and the
decision a node makes before handing an event to a worker that declared the schema
versions it accepts (spec: hello ``schemas``, docs/schema.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .._envelope import Event
from ._ref import SchemaRef, parse_dataschema, schema_ref

__all__ = ["new_event", "refusal", "with_dataschema"]


def with_dataschema(event: Event[Any], tp: Any) -> Event[Any]:
    """``event`` with ``dataschema`` naming ``tp``'s schema (``urn:crosswire:schema:<id>:<version>``)."""
    return msgspec.structs.replace(event, dataschema=schema_ref(tp).uri)


def new_event(type: str, payload: Any, **kwargs: Any) -> Event[Any]:
    """``Event.new(type, payload, **kwargs)`` with ``dataschema`` set from the payload's
    type (its :func:`~crosswire.schema.schema` declaration, else its class name, version 1).

    :raises ValueError: as ``Event.new``.
    """
    return with_dataschema(Event.new(type, payload, **kwargs), payload.__class__)


def _describe(uri: str) -> str:
    try:
        ref: SchemaRef = parse_dataschema(uri)
    except ValueError:
        return uri
    return str(ref)


def refusal(event: Event[Any], accepted: Sequence[str] | None, *, worker: str) -> str | None:
    """Why ``worker`` must not be handed ``event``, or ``None`` when it may.

    ``accepted`` are the ``dataschema`` URIs the worker declared for the event's type
    (``None``: it declared nothing, so anything goes). An event without ``dataschema``
    is not checked. The message names both sides, e.g. ``event order.validated carries
    schema orders.Order v3; worker 'pricing' accepts orders.Order v1, orders.Order v2``.
    """
    if accepted is None or event.dataschema is None or event.dataschema in accepted:
        return None
    wanted = ", ".join(_describe(a) for a in accepted) or "no schema version"
    return f"event {event.type} carries schema {_describe(event.dataschema)}; worker {worker!r} accepts {wanted}"
