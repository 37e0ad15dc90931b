"""CloudEvents binary content mode: an event as message headers plus ``data`` as the body.

This is how an event travels on NATS (CloudEvents NATS protocol binding, binary mode),
so that any CloudEvents SDK produces and consumes crosswire events:

- every attribute but ``datacontenttype`` and ``data`` is a ``ce-<name>`` header —
  CloudEvents' own (``specversion``, ``id``, ``source``, ``type``, ``subject``, ``time``,
  ``dataschema``), crosswire's typed extensions (``ce-correlationid``,
  ``ce-causationid``, ``ce-traceparent``, ``ce-tracestate``, ``ce-partitionkey``,
  ``ce-idempotencykey``, ``ce-deadline``, ``ce-cwversion`` when not 1) and the user's
  extensions; ``attempt`` is not sent (a delivery's attempt comes from the broker);
- ``datacontenttype`` is the ``content-type`` header (lower case, as the CloudEvents Go
  SDK's NATS binding reads it), as it is (a media type is
  printable ASCII; one that is not travels percent-encoded as ``ce-datacontenttype``
  instead); both the CloudEvents Go SDK's NATS binding and HTTP-style readers such as
  the Python SDK read ``Content-Type``; the body is ``data`` (an empty body is no data, unless a content type is given:
  then it is empty data);
- header values are strings: integers in decimal, booleans ``true``/``false``, bytes
  in base64; a user extension that is not a string is listed in the
  ``Crosswire-Ext-Types`` header (``name=int,flag=bool``) so crosswire reads it back
  with its type, while other SDKs see the canonical string;
- values are percent-encoded as the CloudEvents bindings say: space, ``"``, ``%``,
  controls and every non-ASCII character (as UTF-8 octets, upper-case hex); a reader
  also undoes RFC 7230 quoting (``"..."``) first.

Reading also accepts structured mode (a ``Content-Type`` of ``application/cloudevents``
or ``application/cloudevents+json``: the JSON event format as the body) and the previous crosswire format (the whole
MessagePack envelope as the body, with or without ``ce-*`` headers).
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from ._envelope import RESERVED_NAMES, Event, classify_validation_error, decode_event
from ._exceptions import EnvelopeDecodeError
from ._jsonform import event_from_json

__all__ = ["EXT_TYPES_HEADER", "NEEDS_ESCAPE", "STRING_ATTRS", "STRUCTURED", "from_binary", "to_binary", "unescape"]

STRUCTURED = "application/cloudevents+json"
STRUCTURED_BATCH = "application/cloudevents-batch+json"
EXT_TYPES_HEADER = "Crosswire-Ext-Types"

STRING_ATTRS = (  # the string attributes a ce- header carries as it is
    "id",
    "source",
    "type",
    "subject",
    "time",
    "dataschema",
    "correlationid",
    "causationid",
    "traceparent",
    "tracestate",
    "partitionkey",
    "idempotencykey",
)
_HEADER_NAMES = tuple(f"ce-{name}" for name in STRING_ATTRS)
_strings = operator.attrgetter(*STRING_ATTRS)  # the string attributes, in that order
_INT_ATTRS = ("deadline", "cwversion")
_NOT_HEADERS = frozenset({"specversion", "data", "data_base64", "attempt", "extensions"})
_STR, _INT, _SKIP = "str", "int", "skip"
_KINDS = {**dict.fromkeys(STRING_ATTRS, _STR), **dict.fromkeys(_INT_ATTRS, _INT), "specversion": _SKIP}
_KINDS["datacontenttype"] = _SKIP  # read below: it may come from content-type instead
_PLAIN_NAMES = frozenset(STRING_ATTRS) | {"specversion", "datacontenttype"}
_EXT_TYPES = EXT_TYPES_HEADER.lower()
_DECIMAL = re.compile(r"-?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)


NEEDS_ESCAPE = re.compile(r"[^\x21\x23\x24\x26-\x7e]")
"""A character a header value carries percent-encoded: space, ``"``, ``%``, controls, DEL, non-ASCII."""


def _escape(value: str) -> str:
    if NEEDS_ESCAPE.search(value) is None:
        return value
    return NEEDS_ESCAPE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


def _unquote(value: str) -> str:
    """Undo RFC 7230 quoting (``"a \\"b\\""``), which a header value may use."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def unescape(value: str) -> str:
    """A header value as the attribute it carries (RFC 7230 unquoting, then percent-decoding)."""
    if "%" not in value and not value.startswith('"'):
        return value
    value = _unquote(value)
    if "%" not in value:
        return value
    raw = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%" and _is_hex(value[i + 1 : i + 3]):
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(c.encode())
            i += 1
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise EnvelopeDecodeError("invalid_value", f"header value {value!r} is not UTF-8 once decoded") from None


def _is_hex(two: str) -> bool:
    return len(two) == 2 and all(c in "0123456789abcdefABCDEF" for c in two)


def to_binary(event: Event[Any]) -> tuple[dict[str, str], bytes]:
    """The event's headers (``ce-*``, ``Content-Type``, ``Crosswire-Ext-Types``) and body."""
    headers: dict[str, str] = {"ce-specversion": event.specversion}
    values = _strings(event)
    escape = NEEDS_ESCAPE.search("".join([v for v in values if v is not None])) is not None
    for header, value in zip(_HEADER_NAMES, values, strict=True):
        if value is not None:
            headers[header] = _escape(value) if escape else value
    if event.deadline is not None:
        headers["ce-deadline"] = str(event.deadline)
    if event.cwversion != 1:
        headers["ce-cwversion"] = str(event.cwversion)
    content_type = event.datacontenttype
    if content_type is not None:
        if content_type.isascii() and content_type.isprintable():
            headers["content-type"] = content_type  # lower case: as the Go SDK's NATS binding reads it
        else:
            headers["ce-datacontenttype"] = _escape(content_type)
    types = []
    for name, value in sorted(event.extensions.items()):
        if isinstance(value, bool):
            text, kind = ("true" if value else "false"), "bool"
        elif isinstance(value, int):
            text, kind = str(value), "int"
        elif isinstance(value, bytes):
            text, kind = base64.b64encode(value).decode(), "bytes"
        else:
            text, kind = _escape(value), ""
        headers[f"ce-{name}"] = text
        if kind:
            types.append(f"{name}={kind}")
    if types:
        headers[EXT_TYPES_HEADER] = ",".join(types)
    return headers, event.data or b""


def _folded(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names folded to ASCII lower case. Two spellings of one name with different
    values are ``malformed``; a ``ce-`` name that is not ASCII is ``invalid_extension_name``
    (other non-ASCII names are ignored)."""
    if "".join(headers).isascii():
        out = {key.lower(): value for key, value in headers.items()}
        if len(out) == len(headers):
            return out  # the usual case: one spelling per name
    out = {}
    for key, value in headers.items():
        if not key.isascii():
            if key[:3].lower() == "ce-":
                raise EnvelopeDecodeError("invalid_extension_name", f"header name {key!r} is not ASCII")
            continue
        name = key.lower()
        if out.get(name, value) != value:
            raise EnvelopeDecodeError("malformed", f"header {name!r} is given twice with different values")
        out[name] = value
    return out


def from_binary(headers: Mapping[str, str] | None, body: bytes) -> Event[Any]:
    """The event a message carries: binary mode, structured mode, or the previous format.

    :raises EnvelopeDecodeError: with a spec/envelope.md code, naming what was wrong.
    """
    folded = _folded(headers or {})
    content_type = folded.get("content-type")
    media = content_type.split(";", 1)[0].strip().lower() if content_type else ""
    if media.startswith("application/cloudevents"):
        if media == STRUCTURED_BATCH:
            raise EnvelopeDecodeError("malformed", "CloudEvents batch mode is not accepted; send one event per message")
        if media not in (STRUCTURED, "application/cloudevents"):
            raise EnvelopeDecodeError("malformed", f"structured mode in {media!r}: only the JSON event format is read")
        return event_from_json(body)
    ce = {k[3:]: v for k, v in folded.items() if k[:3] == "ce-"}
    if "specversion" not in ce:
        return decode_event(body)
    if body[:1] == b"\xde" and (previous := _previous_format(ce, body)) is not None:
        return previous
    values = "".join(ce.values())
    if ce.keys() <= _PLAIN_NAMES and "%" not in values and '"' not in values and _EXT_TYPES not in folded:
        # the usual case: only string attributes, none escaped; what _from_headers
        # gives, without looking at each value in Python
        fields: dict[str, Any] = {"specversion": ce["specversion"], **ce}  # in _from_headers' order
        escaped = fields.pop("datacontenttype", None)
        if escaped is not None:
            content_type = escaped
        if content_type is not None:
            fields["datacontenttype"] = content_type
        if body or content_type is not None:
            fields["data"] = body
        try:
            return msgspec.convert(fields, Event)
        except msgspec.ValidationError as exc:
            raise classify_validation_error(exc) from None
    return _from_headers(ce, folded, body)


def _previous_format(ce: Mapping[str, str], body: bytes) -> Event[Any] | None:
    """The event, if the body is the previous format: the whole MessagePack envelope (a
    map16, 0xde) of the event the ``ce-id`` header names."""
    if body[:1] != b"\xde":
        return None
    try:
        event = decode_event(body)
    except EnvelopeDecodeError:
        return None
    return event if event.id == ce.get("id") else None


def _from_headers(ce: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Event[Any]:
    types: dict[str, str] = {}
    declared = headers.get(EXT_TYPES_HEADER.lower())
    if declared:
        for item in declared.split(","):
            name, _, kind = item.strip().partition("=")
            types[name] = kind
    fields: dict[str, Any] = {"specversion": ce["specversion"]}
    extensions: dict[str, Any] = {}
    for name, raw in ce.items():
        role = _KINDS.get(name)
        if role is _STR:
            fields[name] = unescape(raw)
        elif role is _SKIP:
            continue
        elif role is _INT:
            fields[name] = _int(name, raw)
        elif name in _NOT_HEADERS or name in RESERVED_NAMES:
            raise EnvelopeDecodeError(
                "invalid_extension_name", f"header ce-{name} is not an attribute a header carries"
            )
        else:
            extensions[name] = _typed(name, raw, types.get(name, ""))
    escaped = ce.get("datacontenttype")
    content_type = unescape(escaped) if escaped is not None else headers.get("content-type")
    if content_type is not None:
        fields["datacontenttype"] = content_type
    if body or content_type is not None:  # an empty body with a content type is empty data
        fields["data"] = body
    if extensions:
        fields["extensions"] = extensions
    try:
        return msgspec.convert(fields, Event)
    except msgspec.ValidationError as exc:
        raise classify_validation_error(exc) from None


def _int(name: str, raw: str) -> int:
    if not _DECIMAL.fullmatch(raw):
        raise EnvelopeDecodeError("wrong_type", f"header ce-{name} must be a decimal integer, got {raw!r}")
    if len(raw) > 40:  # far outside every bound; spare int() a huge conversion
        return -(2**64) if raw[0] == "-" else 2**64
    return int(raw)


def _typed(name: str, raw: str, kind: str) -> Any:
    if kind == "int":
        value = _int(name, raw)
        if not _INT64[0] <= value <= _INT64[1]:
            raise EnvelopeDecodeError("too_large", f"header ce-{name} does not fit a 64-bit signed integer: {raw}")
        return value
    if kind == "bool":
        if raw not in ("true", "false"):
            raise EnvelopeDecodeError("wrong_type", f"header ce-{name} must be true or false, got {raw!r}")
        return raw == "true"
    if kind == "bytes":
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeDecodeError("wrong_type", f"header ce-{name} must be base64, got {raw!r}") from None
    return unescape(raw)
