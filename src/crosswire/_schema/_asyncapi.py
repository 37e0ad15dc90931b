"""An App's contract as an AsyncAPI 3.0 document.

One channel per event type (its NATS subject ``<prefix>.<type>``), one message per
channel whose payload is the JSON Schema msgspec derives from the annotated payload
type, the CloudEvents attributes as message headers, one ``receive`` operation per
binding and channel, one ``send`` operation per declared emitted type, and the
workers' bindings with their runtime (``x-crosswire-*`` where AsyncAPI has no field).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .._app import App
from .._exceptions import ConfigurationError
from .._function import payload_type
from .._subjects import subject_matches
from .._transports.jetstream.config import consumer_name
from ._ref import schema_ref

__all__ = ["CLOUDEVENTS_HEADERS", "asyncapi"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")

#: ``ce-*`` headers the JetStream transport writes (binary content mode), plus Nats-Msg-Id.
CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "x-crosswire-headers": True,
    "description": "CloudEvents 1.0 attributes in binary content mode (ce- headers) and the "
    "JetStream de-duplication id. The message body is the crosswire envelope (spec/envelope.md), "
    "whose data is the payload.",
    "properties": {
        "Nats-Msg-Id": {"type": "string", "description": "the event id; JetStream de-duplicates on it"},
        "ce-specversion": {"type": "string", "const": "1.0"},
        "ce-id": {"type": "string", "minLength": 1, "maxLength": 256},
        "ce-source": {"type": "string", "minLength": 1, "maxLength": 1024},
        "ce-type": {"type": "string", "minLength": 1, "maxLength": 256},
        "ce-subject": {"type": "string", "maxLength": 1024},
        "ce-time": {"type": "string", "format": "date-time"},
        "ce-datacontenttype": {"type": "string", "maxLength": 256},
        "ce-dataschema": {"type": "string", "maxLength": 1024, "description": "urn:crosswire:schema:<id>:<version>"},
        "ce-partitionkey": {"type": "string", "maxLength": 256},
        "ce-traceparent": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
        "ce-tracestate": {"type": "string", "maxLength": 512},
        "ce-correlationid": {"type": "string", "maxLength": 256},
        "ce-causationid": {"type": "string", "maxLength": 256},
        "ce-idempotencykey": {"type": "string", "maxLength": 256},
        "ce-deadline": {"type": "string", "pattern": "^[0-9]+$", "description": "unix epoch milliseconds"},
    },
    "required": ["Nats-Msg-Id", "ce-specversion", "ce-id", "ce-source", "ce-type"],
}


@dataclass
class _Channel:
    event_type: str
    pattern: bool
    payload: Any = None
    declared_by: str | None = None


@dataclass(frozen=True)
class _Binding:
    name: str
    runtime: str
    pattern: str
    payload: Any
    emits: dict[str, Any]
    doc: str


def _bindings(app: App) -> list[_Binding]:
    out = []
    for h in app.handlers:
        doc = (getattr(h.fn, "__doc__", None) or "").strip().splitlines()
        out.append(_Binding(h.name, "python", h.pattern, payload_type(h.fn), dict(h.emits), doc[0] if doc else ""))
    for w in app.workers:
        for pattern, tp in w.handles.items():
            runtime = w.runtime or "worker"
            out.append(_Binding(f"{w.name}:{pattern}", runtime, pattern, tp, dict(w.emits), f"worker {w.name}"))
    return out


def _is_pattern(event_type: str) -> bool:
    return any(tok in ("*", ">") for tok in event_type.split("."))


def _channels(bindings: Sequence[_Binding]) -> dict[str, _Channel]:
    channels: dict[str, _Channel] = {}

    def put(event_type: str, tp: Any, who: str) -> None:
        ch = channels.setdefault(event_type, _Channel(event_type, _is_pattern(event_type)))
        if tp is None:
            return
        if ch.payload is not None and ch.payload is not tp:
            raise ConfigurationError(
                f"event type {event_type!r} has two payload types: {_name(ch.payload)} ({ch.declared_by}) "
                f"and {_name(tp)} ({who})"
            )
        ch.payload, ch.declared_by = tp, who

    for b in bindings:
        for event_type, tp in b.emits.items():
            put(event_type, tp, b.name)
    for b in bindings:
        if not _is_pattern(b.pattern):
            put(b.pattern, b.payload, b.name)
    for b in bindings:  # wildcard receivers: their payload type covers the concrete types they match
        if _is_pattern(b.pattern):
            matched = [c for c in channels.values() if not c.pattern and subject_matches(b.pattern, c.event_type)]
            if not matched:
                put(b.pattern, b.payload, b.name)
            for c in matched:
                if c.payload is None and b.payload is not None:
                    put(c.event_type, b.payload, b.name)
    return dict(sorted(channels.items()))


def _name(tp: Any) -> str:
    return str(getattr(tp, "__qualname__", None) or tp)


def _ident(text: str, taken: set[str]) -> str:
    base = _UNSAFE.sub("_", text) or "x"
    ident, n = base, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


def _struct_classes(types: Iterable[Any]) -> dict[str, type]:
    """Struct and dataclass classes reachable from ``types``, by the name msgspec gives them."""
    found: dict[str, type] = {}

    def walk(info: Any) -> None:
        cls = getattr(info, "cls", None)
        if isinstance(cls, type) and hasattr(info, "fields"):
            if found.get(cls.__name__) is cls:
                return  # recursive types
            found.setdefault(cls.__name__, cls)
        for f in getattr(info, "fields", ()) or ():
            walk(f.type)
        for attr in ("item_type", "key_type", "value_type"):
            if (sub := getattr(info, attr, None)) is not None:
                walk(sub)
        for sub in getattr(info, "types", ()) or ():
            walk(sub)
        for sub in getattr(info, "item_types", ()) or ():
            walk(sub)

    for tp in types:
        walk(msgspec.inspect.type_info(tp))
    return found


def _servers(urls: Sequence[str]) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    for index, url in enumerate(urls):
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.scheme not in ("nats", "tls", "ws", "wss"):
            raise ConfigurationError(f"server URL {url!r}: expected nats://host:port (or tls://)")
        server: dict[str, Any] = {
            "host": f"{parts.hostname or 'localhost'}:{parts.port or 4222}",
            "protocol": "nats",
            "description": "NATS JetStream" + (" over TLS" if parts.scheme in ("tls", "wss") else ""),
        }
        servers["nats" if len(urls) == 1 else f"nats-{index + 1}"] = server
    return servers


def asyncapi(
    app: App,
    *,
    servers: Sequence[str] = ("nats://localhost:4222",),
    subject_prefix: str = "cw",
    stream: str = "CROSSWIRE",
    version: str = "1.0.0",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``app`` as a JSON-ready dict (deterministic order).

    ``servers`` are the NATS URLs, ``subject_prefix`` and ``stream`` the JetStream
    transport's settings (its defaults here), ``version`` the document's ``info.version``.

    :raises ConfigurationError: two bindings declare different payload types for one
        event type, or a payload type has no JSON Schema.
    """
    bindings = _bindings(app)
    channels = _channels(bindings)
    payloads = [c.payload for c in channels.values() if c.payload is not None]
    unique = list(dict.fromkeys(payloads))
    try:
        refs, components = msgspec.json.schema_components(unique, ref_template="#/components/schemas/{name}")
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot derive a JSON Schema: {exc}") from None
    by_type = dict(zip(unique, refs, strict=True))
    for name, cls in _struct_classes(unique).items():
        if name in components:
            ref = schema_ref(cls)
            components[name]["x-crosswire-schema-id"] = ref.id
            components[name]["x-crosswire-schema-version"] = ref.version
    components["CloudEventsHeaders"] = CLOUDEVENTS_HEADERS

    taken: set[str] = set()
    channel_ids = {t: _ident(t, taken) for t in channels}
    doc_channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, ch in channels.items():
        cid = channel_ids[event_type]
        message: dict[str, Any] = {
            "name": event_type,
            "title": event_type,
            "contentType": "application/msgpack",
            "headers": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventsHeaders"},
                    {"type": "object", "properties": {"ce-type": {"type": "string", "const": event_type}}},
                ]
            },
        }
        if ch.payload is not None:
            message["payload"] = by_type[ch.payload]
            ref = schema_ref(ch.payload)
            message["x-crosswire-dataschema"] = ref.uri
            message["headers"]["allOf"][1]["properties"]["ce-dataschema"] = {"type": "string", "const": ref.uri}
        else:
            message["summary"] = "payload type not declared"
        messages[cid] = message
        channel: dict[str, Any] = {
            "address": f"{subject_prefix}.{event_type}",
            "title": event_type,
            "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
        }
        if ch.pattern:
            channel["description"] = "a subscription pattern (NATS wildcards); no concrete type declared matches it"
            channel["x-crosswire-pattern"] = True
        doc_channels[cid] = channel

    operations: dict[str, Any] = {}
    op_ids: set[str] = set()

    def operation(binding: _Binding, action: str, event_type: str) -> None:
        cid = channel_ids[event_type]
        op: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}"}],
            "x-crosswire-binding": binding.name,
            "x-crosswire-runtime": binding.runtime,
        }
        if binding.doc:
            op["summary"] = binding.doc
        if action == "receive":
            op["x-crosswire-pattern"] = binding.pattern
            op["x-crosswire-consumer"] = consumer_name(f"{app.name}.{binding.name}")
        operations[_ident(f"{binding.name}.{action}.{event_type}", op_ids)] = op

    for b in bindings:
        received = (
            [t for t, c in channels.items() if not c.pattern and subject_matches(b.pattern, t)]
            if _is_pattern(b.pattern)
            else []
        ) or [b.pattern]
        for t in received:
            operation(b, "receive", t)
        for t in b.emits:
            operation(b, "send", t)

    workers = {
        w.name: {
            "runtime": w.runtime or "worker",
            "executable": os.path.basename(w.command[0]) if w.command else None,
            "handles": sorted(w.handles),
            "emits": sorted(w.emits),
        }
        for w in app.workers
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": app.name,
            "version": version,
            "description": f"Events of the crosswire app {app.name!r} (source {app.source}), "
            f"on NATS JetStream stream {stream}, subjects {subject_prefix}.<event type>.",
            "x-crosswire-source": app.source,
            "x-crosswire-stream": stream,
            "x-crosswire-workers": workers,
        },
        "defaultContentType": "application/msgpack",
        "servers": _servers(servers),
        "channels": doc_channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(components.items())), "messages": messages},
    }
