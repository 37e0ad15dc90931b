"""Worker-protocol frames (spec/protocol.md): the codec, and no I/O.

A frame on the wire is a 4-byte big-endian body length followed by one MessagePack
map whose first key ``t`` names the frame type. :func:`decode_frame` distinguishes
"need more bytes" (returns ``None``) from "malformed" (raises), and refuses an
oversized length from the header alone, before anything of that size is allocated.

A body nested deeper than :data:`MAX_NESTING` levels (arrays and maps; the body map is
level 1) is ``malformed``, found by :func:`check_nesting` without recursion before
msgspec sees the body, so no input can exhaust the decoder's stack.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any

import msgspec

from .._errorinfo import ErrorInfo
from .._exceptions import FrameDecodeError
from .._observability.records import AttrValue, SpanRecord

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MAX_NESTING",
    "PROTOCOL_VERSIONS",
    "Deliver",
    "Drain",
    "Drained",
    "ErrorFrame",
    "Frame",
    "Goodbye",
    "Heartbeat",
    "Hello",
    "Init",
    "Log",
    "Ready",
    "Reject",
    "Result",
    "UnknownFrame",
    "Welcome",
    "check_nesting",
    "decode_frame",
    "encode_frame",
    "encode_frames",
]

#: Protocol versions this node speaks.
PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
#: Default largest frame either side accepts: a 1 MiB payload plus envelope headroom.
DEFAULT_MAX_FRAME = 1024 * 1024 + 64 * 1024
MIN_MAX_FRAME = 4096

_U32 = struct.Struct(">I")

#: Deepest nesting of MessagePack arrays and maps in a frame body (spec/protocol.md).
MAX_NESTING = 64
NESTING_MESSAGE = f"MessagePack nested deeper than {MAX_NESTING} levels (the protocol's nesting limit)"

# Per MessagePack lead byte: >= 0 the fixed number of bytes that follow; else one of
# the kinds below (a length of 1/2/4 bytes for str/bin/ext, or a container).
_FIXMAP, _FIXARR, _FIXSTR = -1, -2, -3
_LEN1, _LEN2, _LEN4 = -4, -5, -6  # str8/bin8, str16/bin16, str32/bin32: that many length bytes
_EXT1, _EXT2, _EXT4 = -7, -8, -9  # ext8/16/32: length bytes, then a type byte
_ARR2, _ARR4, _MAP2, _MAP4 = -10, -11, -12, -13


def _lead_table() -> list[int]:
    table = [0] * 256
    for b in range(0x80, 0x90):
        table[b] = _FIXMAP
    for b in range(0x90, 0xA0):
        table[b] = _FIXARR
    for b in range(0xA0, 0xC0):
        table[b] = _FIXSTR
    fixed = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
    fixed |= {0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}  # fixext: type byte + data
    for b, n in fixed.items():
        table[b] = n
    kinds = {0xC4: _LEN1, 0xC5: _LEN2, 0xC6: _LEN4, 0xD9: _LEN1, 0xDA: _LEN2, 0xDB: _LEN4}
    kinds |= {0xC7: _EXT1, 0xC8: _EXT2, 0xC9: _EXT4, 0xDC: _ARR2, 0xDD: _ARR4, 0xDE: _MAP2, 0xDF: _MAP4}
    for b, kind in kinds.items():
        table[b] = kind
    return table


_LEAD = _lead_table()
# every byte that is not a container's lead byte: deleting them counts the containers
_NOT_CONTAINER = bytes(b for b in range(256) if _LEAD[b] not in (_FIXMAP, _FIXARR, _ARR2, _ARR4, _MAP2, _MAP4))


def check_nesting(body: bytes | bytearray | memoryview, limit: int = MAX_NESTING) -> None:
    """Refuse MessagePack nested deeper than ``limit`` levels, iteratively.

    Truncated or otherwise broken input is left for the decoder to report.

    :raises FrameDecodeError: ``malformed``, naming the nesting limit.
    """
    if len(body) <= limit:
        return  # too short to hold limit + 1 containers
    data = bytes(body)
    if len(data.translate(None, _NOT_CONTAINER)) <= limit:
        return  # too few container bytes (even counting those inside strings) to be too deep
    lead, n, pos = _LEAD, len(data), 0
    stack: list[int] = []  # items left in each enclosing container
    todo = 1  # items left at this level (the top level holds one value)
    while True:
        while todo == 0:
            if not stack:
                return
            todo = stack.pop()
        if pos >= n:
            return
        kind = lead[data[pos]]
        pos += 1
        todo -= 1
        if kind >= 0:
            pos += kind
            continue
        if kind == _FIXSTR:
            pos += data[pos - 1] & 0x1F
            continue
        if kind in (_LEN1, _LEN2, _LEN4, _EXT1, _EXT2, _EXT4):
            width = 1 if kind in (_LEN1, _EXT1) else 2 if kind in (_LEN2, _EXT2) else 4
            length = int.from_bytes(data[pos : pos + width], "big")
            pos += width + length + (1 if kind in (_EXT1, _EXT2, _EXT4) else 0)
            continue
        if kind == _FIXMAP:
            count = (data[pos - 1] & 0x0F) * 2
        elif kind == _FIXARR:
            count = data[pos - 1] & 0x0F
        else:
            width = 2 if kind in (_ARR2, _MAP2) else 4
            count = int.from_bytes(data[pos : pos + width], "big") * (2 if kind in (_MAP2, _MAP4) else 1)
            pos += width
        if len(stack) + 1 > limit:
            raise FrameDecodeError("malformed", NESTING_MESSAGE)
        stack.append(todo)
        todo = count


_Name = Annotated[str, msgspec.Meta(max_length=256)]
#: ``dataschema`` URIs a worker accepts for one of its types (hello ``schemas``).
_Accepted = Annotated[list[Annotated[str, msgspec.Meta(max_length=1024)]], msgspec.Meta(max_length=16)]


class _Frame(msgspec.Struct, tag_field="t", omit_defaults=True, kw_only=True):
    pass


class Hello(_Frame, tag="hello", kw_only=True):
    versions: Annotated[list[int], msgspec.Meta(max_length=16)]
    name: _Name
    runtime: _Name
    types: Annotated[list[_Name], msgspec.Meta(max_length=1024)]
    max_in_flight: Annotated[int, msgspec.Meta(ge=0)]
    max_frame: Annotated[int, msgspec.Meta(ge=0)]
    pid: int | None = None
    sdk: _Name | None = None
    #: per entry of ``types``, the ``dataschema`` URIs accepted (absent: any)
    schemas: Annotated[dict[_Name, _Accepted], msgspec.Meta(max_length=1024)] | None = None
    token: _Name | None = None


class Welcome(_Frame, tag="welcome"):
    version: int
    max_frame: int
    heartbeat_ms: int
    node: _Name


class Reject(_Frame, tag="reject"):
    reason: str


class Init(_Frame, tag="init"):
    pass


class Ready(_Frame, tag="ready"):
    pass


class Deliver(_Frame, tag="deliver"):
    id: Annotated[int, msgspec.Meta(ge=0)]
    envelope: bytes
    deadline: Annotated[int, msgspec.Meta(ge=0)]


class Result(_Frame, tag="result", kw_only=True):
    id: Annotated[int, msgspec.Meta(ge=0)]
    ok: bool
    error: ErrorInfo | None = None
    start_ns: Annotated[int, msgspec.Meta(ge=0)]
    duration_ns: Annotated[int, msgspec.Meta(ge=0)]
    emitted: list[bytes] = []
    spans: list[SpanRecord] = []


class Log(_Frame, tag="log", kw_only=True):
    """A log line a worker wrote (``id``: the delivery it was handling, if any)."""

    level: Annotated[str, msgspec.Meta(max_length=16)]
    msg: str
    time_ns: Annotated[int, msgspec.Meta(ge=0)]
    id: Annotated[int, msgspec.Meta(ge=0)] | None = None
    trace_id: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    span_id: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    attrs: Annotated[dict[str, AttrValue], msgspec.Meta(max_length=32)] = {}


class Heartbeat(_Frame, tag="heartbeat"):
    pass


class Drain(_Frame, tag="drain"):
    pass


class Drained(_Frame, tag="drained"):
    pass


class Goodbye(_Frame, tag="goodbye"):
    reason: str | None = None


class ErrorFrame(_Frame, tag="error"):
    message: str


class UnknownFrame(msgspec.Struct):
    """A frame type this version does not know; receivers ignore it after handshake."""

    t: str


Frame = (
    Hello | Welcome | Reject | Init | Ready | Deliver | Result | Heartbeat | Drain | Drained | Goodbye | ErrorFrame
) | Log

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(Frame)
_KNOWN = frozenset(
    {
        "hello",
        "welcome",
        "reject",
        "init",
        "ready",
        "deliver",
        "result",
        "heartbeat",
        "drain",
        "drained",
        "goodbye",
        "error",
        "log",
    }
)


def encode_frame(frame: _Frame) -> bytes:
    """One frame, header included."""
    body = _encoder.encode(frame)
    return _U32.pack(len(body)) + body


def encode_frames(frames: list[_Frame]) -> bytes:
    """Several frames coalesced into one buffer, for one write."""
    out = bytearray()
    for frame in frames:
        body = _encoder.encode(frame)
        out += _U32.pack(len(body))
        out += body
    return bytes(out)


def decode_frame(
    buf: bytes | bytearray | memoryview, max_frame: int = DEFAULT_MAX_FRAME
) -> tuple[Frame | UnknownFrame, int] | None:
    """Decode the first frame in ``buf``.

    :returns: ``(frame, bytes consumed)``, or ``None`` if ``buf`` holds only part of a frame.
    :raises FrameDecodeError: ``too_large`` (decided from the header alone), ``empty``,
        ``malformed`` or ``invalid``.
    """
    if len(buf) < 4:
        return None
    (length,) = _U32.unpack_from(buf, 0)
    if length == 0:
        raise FrameDecodeError("empty", "frame length is 0")
    if length > max_frame:
        raise FrameDecodeError("too_large", f"frame too large: {length} bytes > max {max_frame}")
    end = 4 + length
    if len(buf) < end:
        return None
    body = memoryview(buf)[4:end]
    return decode_body(body), end


def decode_body(body: bytes | memoryview) -> Frame | UnknownFrame:
    """Decode one frame body (no header).

    :raises FrameDecodeError: ``malformed`` or ``invalid``.
    """
    check_nesting(body)
    try:
        return _decoder.decode(body)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if "$.t" in msg or "missing required field `t`" in msg or " - at `" not in msg:
            # unknown or absent tag, or not a map: look at the raw body to tell them apart
            try:
                raw = msgspec.msgpack.decode(body)
            except msgspec.DecodeError as inner:
                raise FrameDecodeError("malformed", str(inner)) from None
            if not isinstance(raw, dict) or not isinstance(raw.get("t"), str):
                raise FrameDecodeError("malformed", "frame body must be a map with a str `t`") from None
            if raw["t"] not in _KNOWN:
                return UnknownFrame(t=raw["t"])
        raise FrameDecodeError("invalid", msg) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameDecodeError("malformed", str(exc)) from None
    except RecursionError:  # not reachable past check_nesting; kept as a backstop
        raise FrameDecodeError("malformed", NESTING_MESSAGE) from None
