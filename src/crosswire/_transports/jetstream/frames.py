"""The event of a delivery, read straight from its header block in the usual case.

A crosswire event's header block is a handful of ``ce-*`` string attributes,
``content-type`` and ``Nats-Msg-Id``, with nothing escaped (crosswire percent-encodes
spaces, quotes and non-ASCII). :func:`read_block` turns such a block into JSON with two
``str.replace`` calls (``": "`` and the line breaks become JSON separators) and has
msgspec decode it into a struct with the Event's own field types and limits, so no
header is looked at in Python.

A block of ``Nats-Msg-Id`` alone (``cloudevents_headers=False``) means the body is the
MessagePack envelope: it is decoded as such.

It answers only what it is sure of: any other block (a name it does not know, other
case, an extension, ``ce-deadline``, an escape or quote, a tab, a space next to a
separator, a value with ``": "``, non-ASCII, a structured-mode content type, a body in
the previous format) gives ``None``, and the caller reads the message the general way
(:func:`crosswire._transports.jetstream.headers.parse_header_block`, then
:func:`crosswire._binary.from_binary`), which also says what is wrong with a message
that does not decode. For the blocks it answers, it gives what the general way gives
(``tests/jetstream/test_frames.py`` checks both on the header vectors and odd blocks).
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from ..._binary import STRING_ATTRS
from ..._envelope import MAX_DATA, Event, decode_event
from ..._exceptions import EnvelopeDecodeError

__all__ = ["read_block"]

_hints = typing.get_type_hints(Event, include_extras=True)
_REQUIRED = ("specversion", "id", "source", "type")


def _field(name: str) -> tuple[str, Any] | tuple[str, Any, None]:
    return (name, _hints[name]) if name in _REQUIRED else (name, _hints[name], None)


_Block = msgspec.defstruct(
    "_Block",
    [
        _field("specversion"),
        *(_field(name) for name in STRING_ATTRS),
        ("datacontenttype", _hints["datacontenttype"], None),
        ("content_type", _hints["datacontenttype"], None),
        ("msgid", str | None, None),
    ],
    rename={
        **{name: f"ce-{name}" for name in ("specversion", *STRING_ATTRS, "datacontenttype")},
        "content_type": "content-type",
        "msgid": "Nats-Msg-Id",
    },
    forbid_unknown_fields=True,
)
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_Block)
_HEAD = b"NATS/1.0\r\n"
_TAIL = b"\r\n\r\n"
_LEAN = b"NATS/1.0\r\nNats-Msg-Id: "


def _lean(block: bytes, body: bytes) -> tuple[Event[Any], str | None] | None:
    """A block of ``Nats-Msg-Id`` alone (``cloudevents_headers=False``): the body is the
    whole envelope, as the general way reads it."""
    msgid = block[len(_LEAN) : -4]
    if not msgid.isascii() or msgid != msgid.strip() or not msgid:
        return None
    try:
        return decode_event(body), msgid.decode()
    except EnvelopeDecodeError:
        return None


def read_block(block: bytes, body: bytes) -> tuple[Event[Any], str | None] | None:
    """``(event, Nats-Msg-Id header)`` of a message with the usual header block (see
    the module), or ``None``: read it the general way."""
    if block.startswith(_LEAN) and block.endswith(_TAIL) and block.count(b"\r\n") == 3:
        return _lean(block, body)
    if (
        b"ce-specversion: " not in block
        or not block.startswith(_HEAD)
        or not block.endswith(_TAIL)
        or not block.isascii()
        or b'"' in block
        or b"\\" in block
        or b"%" in block
        or body[:1] == b"\xde"  # perhaps the previous format: the general way decides
        or len(body) > MAX_DATA
    ):
        return None
    text = b'{"' + block[10:-4].replace(b": ", b'":"').replace(b"\r\n", b'","') + b'"}'
    if b'" ' in text or b' "' in text:
        return None  # a name or value with a space at its edge: the general way strips it
    try:
        b: Any = _decoder.decode(text)
    except msgspec.DecodeError:
        return None
    content_type = b.datacontenttype if b.datacontenttype is not None else b.content_type
    if content_type is not None and content_type[:23].lower() == "application/cloudevents":
        return None  # structured mode (the value has no leading space: see the checks above)
    try:
        event: Event[Any] = Event(
            specversion=b.specversion,
            id=b.id,
            source=b.source,
            type=b.type,
            subject=b.subject,
            time=b.time,
            datacontenttype=content_type,
            dataschema=b.dataschema,
            data=body if body or content_type is not None else None,
            correlationid=b.correlationid,
            causationid=b.causationid,
            traceparent=b.traceparent,
            tracestate=b.tracestate,
            partitionkey=b.partitionkey,
            idempotencykey=b.idempotencykey,
        )
    except Exception:  # the checks Event runs (time, traceparent): the general way names them
        return None
    return event, b.msgid
