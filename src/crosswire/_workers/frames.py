"""Worker-protocol frames (spec/protocol.md): the codec, and no I/O.

A frame on the wire is a 4-byte big-endian body length followed by one MessagePack
map whose first key ``t`` names the frame type. :func:`decode_frame` distinguishes
"need more bytes" (returns ``None``) from "malformed" (raises), and refuses an
oversized length from the header alone, before anything of that size is allocated.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any

import msgspec

from .._errorinfo import ErrorInfo
from .._exceptions import FrameDecodeError

__all__ = [
    "DEFAULT_MAX_FRAME",
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
    "Ready",
    "Reject",
    "Result",
    "UnknownFrame",
    "Welcome",
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

_Name = Annotated[str, msgspec.Meta(max_length=256)]


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


Frame = Hello | Welcome | Reject | Init | Ready | Deliver | Result | Heartbeat | Drain | Drained | Goodbye | ErrorFrame

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
