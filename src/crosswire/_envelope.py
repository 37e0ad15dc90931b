"""The event envelope (spec/envelope.md): CloudEvents 1.0 attributes plus typed
crosswire extensions, encoded as MessagePack (binary) or CloudEvents JSON (structured).

``Event`` is a msgspec ``Struct``: decoding validates every limit in C, and the
encoding is canonical (fixed key order, defaults omitted), so Python, Go and Rust
produce the same bytes for the same event.
"""

from __future__ import annotations

import itertools
import os
import re
import time as _time
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from ._exceptions import EnvelopeDecodeError
from ._schema._ref import declared_schema

__all__ = [
    "JSON_ATTRIBUTES",
    "RESERVED_NAMES",
    "classify_validation_error",
    "deadline_ms",
    "encode_payload",
    "Event",
    "decode_event",
    "encode_event",
    "new_event_id",
]

T = TypeVar("T")

MAX_DATA = 16 * 1024 * 1024
MAX_EXTENSIONS = 32
MAX_EXTENSION_VALUE = 4096

_Str256 = Annotated[str, msgspec.Meta(max_length=256)]
_Str1024 = Annotated[str, msgspec.Meta(max_length=1024)]
_Required256 = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Required1024 = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
# Shapes checked with one C-level bytes.translate and a set lookup (a regex per field
# would triple the cost of decoding an envelope). ASCII digits become "d", lower-case
# hex digits "h", and a "d" or "h" already there "?" (so a literal "d" never passes for
# a digit); anything else (other scripts' digits included) is left as it is.
_DIGITS = bytes.maketrans(b"0123456789d", b"d" * 10 + b"?")
_HEX = bytes.maketrans(b"0123456789abcdefh", b"h" * 16 + b"?")
_TIME_SHAPES = frozenset(
    f"dddd-dd-dd{t}dd:dd:dd{fraction}{zone}".encode()
    for t in "Tt"
    for fraction in ["", *("." + "d" * n for n in range(1, 10))]
    for zone in ("Z", "z", "+dd:dd", "-dd:dd")
)
_TRACEPARENT_SHAPE = b"hh-" + b"h" * 32 + b"-" + b"h" * 16 + b"-hh"
_valid_traceparents: dict[str, None] = {}  # bounded cache: a trace's events share one


def _check_time(value: str) -> None:
    try:
        shape = value.encode().translate(_DIGITS)
    except UnicodeEncodeError:
        shape = b""
    if shape not in _TIME_SHAPES:
        raise EnvelopeDecodeError("invalid_value", f"time {value!r} is not an RFC 3339 timestamp")


def _check_traceparent(value: str) -> None:
    if value in _valid_traceparents:
        return
    try:
        shape = value.encode().translate(_HEX)
    except UnicodeEncodeError:
        shape = b""
    if shape != _TRACEPARENT_SHAPE:
        raise EnvelopeDecodeError(
            "invalid_value", f"traceparent {value!r} is not W3C trace-context (00-<32 hex>-<16 hex>-<2 hex>)"
        )
    if len(_valid_traceparents) >= 4096:
        _valid_traceparents.clear()
    _valid_traceparents[value] = None


_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")

ExtensionValue = str | int | bool | bytes


class Event(msgspec.Struct, Generic[T], kw_only=True, omit_defaults=True, dict=True):
    """One event: CloudEvents attributes, crosswire extensions, opaque ``data``.

    Build one with :meth:`Event.new`; a handler receives one with ``payload`` set to
    ``data`` decoded into the handler's annotated type (``Event[Order]``).
    Not thread-safe to mutate; the node never mutates an event after submit.
    """

    specversion: Literal["1.0"]
    id: _Required256
    source: _Required1024
    type: _Required256
    subject: _Str1024 | None = None
    time: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    datacontenttype: _Str256 | None = None
    dataschema: _Str1024 | None = None
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_DATA)] | None = None
    cwversion: Literal[1] = 1
    correlationid: _Str256 | None = None
    causationid: _Str256 | None = None
    traceparent: Annotated[str, msgspec.Meta(max_length=55)] | None = None
    tracestate: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    partitionkey: _Str256 | None = None
    idempotencykey: _Str256 | None = None
    deadline: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1
    extensions: Annotated[dict[str, Any], msgspec.Meta(max_length=MAX_EXTENSIONS)] = {}

    def __post_init__(self) -> None:
        # runs on construction and on every decode: keep it to what the type cannot say
        if self.time is not None:
            _check_time(self.time)
        if self.traceparent is not None:
            _check_traceparent(self.traceparent)
        if self.extensions:
            self.extensions = _check_extensions(self.extensions)

    @classmethod
    def new(
        cls,
        type: str,
        data: Any = None,
        *,
        source: str = "crosswire",
        id: str | None = None,
        subject: str | None = None,
        datacontenttype: str | None = None,
        key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
        deadline: float | datetime | None = None,
        dataschema: str | None = None,
        extensions: dict[str, ExtensionValue] | None = None,
        stamp_time: bool = True,
    ) -> Event[Any]:
        """A new event with a fresh id and the current time.

        The same names and units as ``Node.submit``: ``data`` is ``bytes`` (sent as
        they are, with the ``datacontenttype`` given), ``str`` (UTF-8 text) or anything
        msgspec encodes (Structs, dataclasses, dicts: MessagePack); ``deadline`` is
        seconds from now or an aware ``datetime``. ``dataschema`` defaults to the
        schema a payload type declared with ``@crosswire.schema.schema(...)``.

        :raises ValueError: for data that cannot be encoded, an invalid extension name
            or value, or a naive ``datetime`` deadline.
        """
        if data is None or isinstance(data, (bytes, bytearray, memoryview)):
            body, content_type = (bytes(data) if data is not None else None), None
        else:
            body, content_type = encode_payload(data)
            if dataschema is None and (declared := declared_schema(data.__class__)) is not None:
                dataschema = declared.uri
        event = cls(
            specversion="1.0",
            id=id or _ids.next(),
            source=source,
            type=type,
            datacontenttype=datacontenttype or content_type,
            data=body,
            extensions=extensions or {},
        )
        # the optional attributes, set only when given (most events have none of them);
        # constructing with them all costs as much as the rest of this method
        if subject is not None or correlation_id is not None or causation_id is not None or traceparent is not None:
            event = msgspec.structs.replace(
                event,
                subject=subject,
                correlationid=correlation_id,
                causationid=causation_id,
                traceparent=traceparent,
            )
        if key is not None or idempotency_key is not None or deadline is not None or dataschema is not None:
            event = msgspec.structs.replace(
                event,
                partitionkey=key,
                idempotencykey=idempotency_key,
                deadline=deadline_ms(deadline),
                dataschema=dataschema,
            )
        if stamp_time:
            event.time = _now_rfc3339()  # valid by construction: set after the checks
        return event

    @property
    def key(self) -> str | None:
        """The order key (``partitionkey``)."""
        return self.partitionkey

    @property
    def dedup_key(self) -> str:
        """What deduplication keys on: the idempotency key, else the id."""
        return self.idempotencykey or self.id

    @property
    def payload(self) -> T:
        """``data`` decoded into the handler's annotated type.

        :raises AttributeError: outside a handler (nothing decoded it yet).
        """
        try:
            return self.__dict__["_payload"]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError("payload is set when the event reaches a typed handler") from None

    def with_payload(self, payload: Any) -> Event[Any]:
        """Attach the decoded payload (used by the dispatcher); returns ``self``."""
        self.__dict__["_payload"] = payload
        return self


#: Attribute keys of the envelope (and ``data_base64``); user extensions may not reuse them.
RESERVED_NAMES = frozenset(Event.__struct_fields__) | {"data_base64"}
#: Attributes written to the CloudEvents JSON form, in wire order (``data`` is written apart,
#: user extensions are flattened beside these).
JSON_ATTRIBUTES = tuple(name for name in Event.__struct_fields__ if name not in ("data", "extensions"))


class _Ids:
    """Event ids: a random 64-bit prefix per process plus a counter — unique without
    a syscall per event. Re-seeded in a forked child so parent and child never collide."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reseed)


def new_event_id() -> str:
    """A unique id: 32 hex characters (random process prefix + counter)."""
    return _ids.next()


_second_cache: list[Any] = [-1, ""]


def _now_rfc3339() -> str:
    second, micros = divmod(_time.time_ns() // 1000, 1_000_000)
    if second != _second_cache[0]:
        _second_cache[0] = second
        _second_cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second_cache[1]}.{micros:06d}Z"


def follow_up(parent: Event[Any], child: Event[Any], source: str) -> Event[Any]:
    """Fill what the handler left unset on a follow-up event (spec/conformance-worker.md):
    ``source`` (also replacing ``Event.new``'s default ``"crosswire"``), ``correlationid``
    (the parent's, or its ``id``), ``causationid`` (the parent's ``id``), the parent's
    ``traceparent``/``tracestate``/``partitionkey``, and ``time`` (now)."""
    changes: dict[str, Any] = {}
    if child.source == "crosswire":
        changes["source"] = source
    if child.correlationid is None:
        changes["correlationid"] = parent.correlationid or parent.id
    if child.causationid is None:
        changes["causationid"] = parent.id
    for name in ("traceparent", "tracestate", "partitionkey"):
        if getattr(child, name) is None and getattr(parent, name) is not None:
            changes[name] = getattr(parent, name)
    if child.time is None:
        changes["time"] = _now_rfc3339()
    return msgspec.structs.replace(child, **changes) if changes else child


def _check_extensions(ext: dict[str, Any]) -> dict[str, Any]:
    for name, value in ext.items():
        if not isinstance(name, str) or not _EXTENSION_NAME.match(name) or name in RESERVED_NAMES:
            raise EnvelopeDecodeError(
                "invalid_extension_name",
                f"extension name {name!r} must be 1-20 of a-z0-9 and not an attribute name",
            )
        if isinstance(value, (str, bytes)):
            size = len(value)  # characters for str, bytes for bytes
            if size > MAX_EXTENSION_VALUE:
                unit = "characters" if isinstance(value, str) else "bytes"
                raise EnvelopeDecodeError("too_large", f"extension {name!r} is {size} {unit} > {MAX_EXTENSION_VALUE}")
        elif isinstance(value, bool) or (isinstance(value, int) and -(2**63) <= value < 2**63):
            pass
        else:
            raise EnvelopeDecodeError(
                "wrong_type",
                f"extension {name!r} must be str, int, bool or bytes, got {type(value).__name__}",
            )
    keys = list(ext)
    ordered = sorted(keys, key=str.encode)
    if keys != ordered:
        ext = {k: ext[k] for k in ordered}
    return ext


_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Event[Any]] = msgspec.msgpack.Decoder(Event)


#: ``encode_event(event) -> bytes``: the canonical MessagePack bytes of ``event``.
#: (The encoder's own method, not a wrapper: encoding cannot fail for a valid Event.)
encode_event = _encoder.encode


def decode_event(data: bytes | memoryview) -> Event[Any]:
    """Decode and validate an envelope.

    :raises EnvelopeDecodeError: ``.code`` says what was wrong (spec/envelope.md).
    """
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise classify_validation_error(exc) from None
    except EnvelopeDecodeError:
        raise


def classify_validation_error(exc: Exception) -> EnvelopeDecodeError:
    """Map a msgspec error onto the spec's closed set of decode codes."""
    msg = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return EnvelopeDecodeError("invalid_value", f"invalid UTF-8: {msg}")
    if not isinstance(exc, msgspec.ValidationError):
        if "truncated" in msg:
            return EnvelopeDecodeError("truncated", msg)
        if "utf-8" in msg.lower():
            return EnvelopeDecodeError("invalid_value", msg)
        return EnvelopeDecodeError("malformed", msg)
    if " - at `" not in msg and msg.startswith("Expected `object`"):
        return EnvelopeDecodeError("malformed", f"top level must be a map: {msg}")
    if msg.startswith("Object missing required field") or "of length >= 1" in msg:
        return EnvelopeDecodeError("missing_field", msg)
    if "of length <=" in msg:
        return EnvelopeDecodeError("too_large", msg)
    if msg.startswith("Expected `") and ", got `" in msg:
        return EnvelopeDecodeError("wrong_type", msg)
    if "$.cwversion" in msg:
        return EnvelopeDecodeError("unsupported_version", msg)
    return EnvelopeDecodeError("invalid_value", msg)


_payload_encoder = msgspec.msgpack.Encoder()


def encode_payload(payload: Any) -> tuple[bytes | None, str | None]:
    """``data`` and its ``datacontenttype`` for a payload given to ``Event.new``/``submit``.

    :raises ValueError: the payload cannot be encoded (named in the message).
    """
    if payload is None:
        return None, None
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload), "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode(), "text/plain; charset=utf-8"
    try:
        return _payload_encoder.encode(payload), "application/msgpack"
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"payload of type {type(payload).__name__} cannot be encoded: {exc}") from None


def deadline_ms(deadline: float | datetime | None) -> int | None:
    """An event deadline (unix ms) from seconds from now or an aware ``datetime``."""
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            raise ValueError("a deadline datetime must be timezone-aware")
        return int(deadline.timestamp() * 1000)
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        raise ValueError(f"deadline must be seconds from now or a datetime, got {deadline!r}")
    return int((_time.time() + deadline) * 1000)
