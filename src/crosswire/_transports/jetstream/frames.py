"""The event of a delivery, read straight from its header block in the usual case.

A crosswire event's header block is a handful of ``ce-*`` string attributes,
``content-type`` and ``Nats-Msg-Id``, with nothing escaped (crosswire percent-encodes
spaces, quotes and non-ASCII). :func:`read_block` turns such a block into JSON with two
``str.replace`` calls (``": "`` and the line breaks become JSON separators) and has
msgspec decode it into a struct with the Event's own field types and limits, so no
header is looked at in Python.

Blocks in the layout crosswire's publisher writes (``ce-specversion``, ``ce-id``, the
producer's lines, ``Nats-Msg-Id`` last: :func:`.publish.event_block`) are cheaper still:
the lines between ``ce-id`` and ``Nats-Msg-Id`` but ``ce-time`` are the same for every
event of one producer and type, so the event read from the first such block (without
its data) is kept for them (up to 1024 producers' lines), and the next one only
checks its id and time and copies it with those (and its body). A block of the
producer read last is matched against that producer's lines in place (no slices but
its id and time, no lookup).

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

import re
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
_OWN = b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: "
_MSGID = b"\r\nNats-Msg-Id: "
_OWN_SIZE, _MSGID_SIZE = len(_OWN), len(_MSGID)
_PLAIN_VALUE = re.compile(rb"[!#$&-\[\]-~]{1,64}")  # an id _read reads as it is
# a producer's lines -> an event read from them without its data: every block with those
# lines has its attributes but id and time (bounded)
_producers: dict[bytes, Event[Any]] = {}
# the last producer's lines read from _producers: those before its time (from the end of
# the ce-id line), those after it (to the Nats-Msg-Id value), the event read from them
_last: tuple[bytes, bytes, Event[Any] | None] = (b"", b"", None)


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
    if block.startswith(_OWN):
        return _own(block, body)
    if block.startswith(_LEAN) and block.endswith(_TAIL) and block.count(b"\r\n") == 3:
        return _lean(block, body)
    return _read(block, body)


def _plain_id(id_: bytes) -> bool:
    """Whether ``id_`` is an id :func:`_read` would read as it is."""
    return (id_.isalnum() and len(id_) <= 256) or _PLAIN_VALUE.fullmatch(id_) is not None


def _own(block: bytes, body: bytes) -> tuple[Event[Any], str | None] | None:
    """A block in the layout crosswire writes (``ce-specversion``, ``ce-id``, the
    producer's lines, ``Nats-Msg-Id`` = ``ce-id`` last) whose producer's lines were
    read before (:func:`_read`): only the id and ``ce-time`` differ, both checked here
    as :func:`_read` checks them. Any other block: :func:`_read`.

    The block of the producer read last is matched piece by piece first (``_last``:
    the lines around its time, without slicing them out)."""
    global _last
    end = block.find(b"\r\n", _OWN_SIZE)
    before, after, template = _last
    if template is not None and block.startswith(before, end):
        at = end + len(before)
        stop = block.find(b"\r\n", at)
        size = len(block)
        id_ = block[_OWN_SIZE:end]
        if (
            block.startswith(after, stop)
            and size == stop + len(after) + len(id_) + 4
            and block.endswith(id_, 0, size - 4)
            and block.endswith(_TAIL)
            and _plain_id(id_)
        ):
            return _copy(template, id_, block[at:stop], block, body)
    mark = block.rfind(_MSGID)
    if mark <= end or not block.endswith(_TAIL):
        return _read(block, body)
    id_ = block[_OWN_SIZE:end]
    if block[mark + _MSGID_SIZE : -4] != id_:
        return _read(block, body)
    if not _plain_id(id_):
        return _read(block, body)
    lines = block[end + 2 : mark + 2]
    at = lines.find(b"ce-time: ")
    if at == 0 or (at > 0 and lines[at - 1] == 10):  # a line of its own
        stop = lines.find(b"\r\n", at)
        # checked by Event: the shape of an RFC 3339 time has nothing _read would read otherwise
        time = lines[at + 9 : stop]
        key = lines[:at] + lines[stop + 2 :]
    else:
        time, key = None, lines
    try:
        template = _producers[key]
    except KeyError:
        return _learn(key, id_, time, block, body)
    if time is not None:  # the next block is matched against this producer's first
        _last = (b"\r\n" + lines[: at + 9], b"\r\n" + lines[stop + 2 :] + _MSGID[2:], template)
    return _copy(template, id_, time, block, body)


def _copy(
    template: Event[Any], id_: bytes, time: bytes | None, block: bytes, body: bytes
) -> tuple[Event[Any], str | None] | None:
    """``template`` (a producer's event without its data) with this block's id and time
    and ``body`` as its data; a body in the previous format, too large, or a time
    ``Event`` refuses: :func:`_read`, then the general way, which names what is wrong."""
    if body[:1] == b"\xde" or len(body) > MAX_DATA:
        return _read(block, body)
    try:
        event: Event[Any] = msgspec.structs.replace(  # runs the checks Event runs (time)
            template,
            id=id_.decode(),
            time=time.decode() if time is not None else None,
            data=body if body or template.datacontenttype is not None else None,
        )
    except Exception:
        return _read(block, body)
    return event, event.id


def _learn(
    key: bytes, id_: bytes, time: bytes | None, block: bytes, body: bytes
) -> tuple[Event[Any], str | None] | None:
    """Read the block as :func:`_read` does; remember the producer's lines (``key``) if
    it read them and they hold no other id or time line."""
    read = _read(block, body)
    if read is not None and b"ce-time:" not in key and b"ce-id:" not in key and len(key) <= 4096:
        event, msgid = read
        if msgid == event.id == id_.decode() and event.time == (time.decode() if time is not None else None):
            if len(_producers) >= 1024:
                _producers.clear()
            _producers[key] = msgspec.structs.replace(event, data=None)
    return read


def _read(block: bytes, body: bytes) -> tuple[Event[Any], str | None] | None:
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
