"""Payload schema versions at the worker boundary (spec/protocol.md, "Schema versions").

A worker's ``hello`` may declare, per entry of its ``types``, the ``dataschema`` URIs it
accepts (``schemas``). The node refuses to hand such a worker an event carrying another
``dataschema`` (:func:`accepted` finds the list, :func:`crosswire._schema._wire.refusal`
words the refusal), and warns at the handshake when the payload types the app declares
for those types (``App.worker(handles=...)``, ``emits=`` of handlers and workers) are
not among them (:func:`handshake_warnings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._exceptions import ConfigurationError
from .._schema._ref import declared_schema, parse_dataschema, schema_ref
from .._subjects import subject_matches
from .frames import Hello

__all__ = ["accepted", "accepted_uris", "describe", "handshake_warnings", "produced_schemas"]


def describe(uri: str) -> str:
    """``orders.Order v2`` for ``urn:crosswire:schema:orders.Order:2``; any other URI as is."""
    try:
        return str(parse_dataschema(uri))
    except ValueError:
        return uri


def produced_schemas(declared: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Event type (or pattern) → the ``dataschema`` URIs of the payload types declared
    for it in ``declared`` (``handles``/``emits`` maps; a type declared as ``None`` adds
    nothing), each URI once, in the order first declared."""
    out: dict[str, tuple[str, ...]] = {}
    for mapping in declared:
        for event_type, tp in mapping.items():
            if tp is None:
                continue
            uri = schema_ref(tp).uri
            known = out.get(event_type, ())
            if uri not in known:
                out[event_type] = (*known, uri)
    return out


def _overlaps(a: str, b: str) -> bool:
    """Whether type/pattern ``a`` and type/pattern ``b`` name a common event type (as far
    as one of them is concrete; two different patterns are not compared)."""
    if a == b:
        return True
    wild_a, wild_b = "*" in a or ">" in a, "*" in b or ">" in b
    if wild_a and not wild_b:
        return subject_matches(a, b)
    if wild_b and not wild_a:
        return subject_matches(b, a)
    return False


def handshake_warnings(worker: str, hello: Hello, produces: Mapping[str, Sequence[str]]) -> list[str]:
    """One line per type the worker declared ``schemas`` for whose versions the app
    produces and the worker cannot read, e.g. ``worker 'pricing' accepts [orders.Order
    v1] for order.validated, but the app produces orders.Order v2``."""
    lines: list[str] = []
    for event_type, accepts in (hello.schemas or {}).items():
        missing: list[str] = []
        for declared, uris in produces.items():
            if _overlaps(event_type, declared):
                missing.extend(u for u in uris if u not in accepts and u not in missing)
        if missing:
            lines.append(
                f"worker {worker!r} accepts [{', '.join(describe(a) for a in accepts)}] for {event_type}, "
                f"but the app produces {', '.join(describe(m) for m in missing)}"
            )
    return lines


def accepted(hello: Hello, binding: str, event_type: str, worker: str) -> list[str] | None:
    """The ``dataschema`` URIs the worker accepts on ``binding`` (``<worker>:<type>``),
    or ``None`` when it declared none for that type (it accepts anything)."""
    schemas = hello.schemas
    if not schemas:
        return None
    prefix = f"{worker}:"
    key = binding[len(prefix) :] if binding.startswith(prefix) else event_type
    return schemas.get(key)


def accepted_uris(event_type: str, accepts: Iterable[str | type]) -> list[str]:
    """``accepts=`` of :meth:`crosswire.worker.Worker.handler` as the ``dataschema`` URIs of hello ``schemas``.

    :raises ConfigurationError: a type without a declared schema, an empty or over-long
        URI, or more than 16 of them.
    """
    if isinstance(accepts, str):
        accepts = [accepts]
    uris: list[str] = []
    for item in accepts:
        if isinstance(item, str):
            uri = item
        else:
            ref = declared_schema(item)
            if ref is None:
                raise ConfigurationError(
                    f"accepts for {event_type!r}: {item!r} declares no schema (use crosswire.schema.schema, "
                    "or a generated type, or the dataschema URI itself)"
                )
            uri = ref.uri
        if not 0 < len(uri) <= 1024:
            raise ConfigurationError(f"accepts for {event_type!r}: a dataschema URI is 1-1024 characters, got {uri!r}")
        if uri not in uris:
            uris.append(uri)
    if len(uris) > 16:
        raise ConfigurationError(f"accepts for {event_type!r}: at most 16 schema versions, got {len(uris)}")
    return uris
