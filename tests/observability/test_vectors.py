"""The span and log frame vectors (spec/vectors/frames/observability): the node decodes
them and re-encodes them byte for byte; the Go and Rust suites encode the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from crosswire._workers.frames import Log, Result, decode_frame, encode_frame

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "frames" / "observability"
FILES = sorted(VECTORS.glob("*.json"))


def test_there_are_vectors() -> None:
    assert {p.stem for p in FILES} >= {"result-spans", "log", "log-minimal"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_decode_then_encode_gives_the_bytes(path: Path) -> None:
    vector = json.loads(path.read_text())
    raw = bytes.fromhex(vector["hex"])
    decoded = decode_frame(raw)
    assert decoded is not None
    frame, used = decoded
    assert used == len(raw)
    assert isinstance(frame, Result | Log)
    assert msgspec.to_builtins(frame) == vector["frame"]
    assert encode_frame(frame) == raw


def test_a_result_without_spans_still_decodes() -> None:
    frame = Result(id=1, ok=True, start_ns=1, duration_ns=2)
    decoded = decode_frame(encode_frame(frame))
    assert decoded is not None and decoded[0] == frame and frame.spans == []


def test_a_span_with_a_bad_id_is_invalid() -> None:
    body = msgspec.msgpack.encode(
        {
            "t": "result",
            "id": 1,
            "ok": True,
            "start_ns": 1,
            "duration_ns": 1,
            "spans": [{"trace_id": "xyz", "span_id": "1" * 16, "name": "n", "start_ns": 1, "end_ns": 2}],
        }
    )
    from crosswire._exceptions import FrameDecodeError

    with pytest.raises(FrameDecodeError) as info:
        decode_frame(len(body).to_bytes(4, "big") + body)
    assert info.value.outcome == "invalid"  # type: ignore[attr-defined]
