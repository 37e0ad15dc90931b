"""The frame codec as a stream reader sees it: arbitrary read boundaries, coalesced
writes, and oversized lengths refused from the header alone."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswire._errorinfo import ErrorCode, ErrorInfo
from crosswire._exceptions import FrameDecodeError
from crosswire._workers.frames import (
    DEFAULT_MAX_FRAME,
    Deliver,
    Drain,
    Goodbye,
    Heartbeat,
    Hello,
    Result,
    UnknownFrame,
    decode_frame,
    encode_frame,
    encode_frames,
)


def _sample_frames() -> list[Any]:
    return [
        Hello(
            versions=[1],
            name="pricing",
            runtime="go",
            types=["order.created"],
            max_in_flight=8,
            max_frame=DEFAULT_MAX_FRAME,
            pid=42,
            sdk="crosswire-go/0.1",
        ),
        Deliver(id=1, envelope=b"\x80" * 300, deadline=1795860000000),
        Result(id=1, ok=True, start_ns=1, duration_ns=2),
        Result(
            id=2,
            ok=False,
            start_ns=3,
            duration_ns=4,
            error=ErrorInfo.of(ErrorCode.UNAVAILABLE, "db down", retry_after=0.5, runtime="go"),
            emitted=[b"a", b"b" * 1000],
        ),
        Heartbeat(),
        Drain(),
        Goodbye(reason="bye"),
    ]


class StreamReader:
    """What a connection does: append what arrived, decode every whole frame."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.buffer = bytearray()
        self.max_frame = max_frame
        self.frames: list[Any] = []

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            decoded = decode_frame(self.buffer, self.max_frame)
            if decoded is None:
                return
            frame, used = decoded
            self.frames.append(frame)
            del self.buffer[:used]


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randrange(0, 40))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("seed", range(25))
def test_random_split_points_decode_the_same_frames(seed: int) -> None:
    frames = _sample_frames() * 3
    random.Random(seed).shuffle(frames)
    wire = encode_frames(frames)
    reader = StreamReader()
    for chunk in _split(wire, random.Random(seed)):
        reader.feed(chunk)
    assert reader.frames == frames
    assert not reader.buffer


def test_byte_at_a_time() -> None:
    frames = _sample_frames()
    reader = StreamReader()
    for byte in encode_frames(frames):
        reader.feed(bytes([byte]))
    assert reader.frames == frames


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_any_split_of_coalesced_frames(data: st.DataObject) -> None:
    frames = data.draw(st.lists(st.sampled_from(_sample_frames()), min_size=1, max_size=12))
    wire = encode_frames(frames)
    cuts = data.draw(st.lists(st.integers(1, len(wire) - 1), unique=True, max_size=20))
    reader = StreamReader()
    start = 0
    for cut in sorted(cuts):
        reader.feed(wire[start:cut])
        start = cut
    reader.feed(wire[start:])
    assert reader.frames == frames


def test_incomplete_is_not_an_error() -> None:
    wire = encode_frame(Deliver(id=7, envelope=b"x" * 100, deadline=0))
    for end in range(len(wire)):
        assert decode_frame(wire[:end]) is None, f"{end} bytes of {len(wire)} decoded"
    decoded = decode_frame(wire)
    assert decoded is not None
    assert decoded[1] == len(wire)


def test_coalesced_frames_report_the_bytes_used() -> None:
    frames = _sample_frames()
    wire = encode_frames(frames)
    assert wire == b"".join(encode_frame(f) for f in frames)
    offset, got = 0, []
    while offset < len(wire):
        decoded = decode_frame(memoryview(wire)[offset:])
        assert decoded is not None
        got.append(decoded[0])
        offset += decoded[1]
    assert got == frames
    assert offset == len(wire)


@pytest.mark.parametrize("length", [DEFAULT_MAX_FRAME + 1, 2**31, 2**32 - 1])
def test_too_large_is_decided_from_the_header_alone(length: int) -> None:
    header = struct.pack(">I", length)
    with pytest.raises(FrameDecodeError) as info:
        decode_frame(header)  # no body at all: the reader must not wait for 4 GiB
    assert info.value.outcome == "too_large"
    assert str(length) in str(info.value)


def test_too_large_respects_the_negotiated_maximum() -> None:
    wire = encode_frame(Deliver(id=1, envelope=b"x" * 5000, deadline=0))
    assert decode_frame(wire, max_frame=len(wire) - 4) is not None
    with pytest.raises(FrameDecodeError) as info:
        decode_frame(wire[:4], max_frame=len(wire) - 5)
    assert info.value.outcome == "too_large"


def test_a_stream_reader_stops_at_the_oversized_frame() -> None:
    good = encode_frame(Heartbeat())
    reader = StreamReader(max_frame=64)
    with pytest.raises(FrameDecodeError, match="too_large"):
        reader.feed(good + struct.pack(">I", 65))
    assert reader.frames == [Heartbeat()]


def test_empty_frame() -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode_frame(b"\x00\x00\x00\x00")
    assert info.value.outcome == "empty"


def test_unknown_frame_types_are_skipped_not_fatal() -> None:
    body = b"\x82\xa1t\xa6future\xa1x\x01"
    wire = struct.pack(">I", len(body)) + body + encode_frame(Heartbeat())
    reader = StreamReader()
    reader.feed(wire)
    assert reader.frames == [UnknownFrame(t="future"), Heartbeat()]
