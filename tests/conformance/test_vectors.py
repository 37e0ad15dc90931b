"""Every file in spec/vectors/ against the Python codecs, byte for byte.

Rules (spec/envelope.md and spec/protocol.md, "Vectors"):

- envelope/errors valid: decode ``hex`` → the JSON form equals ``event``/``error_info``;
  re-encoding gives ``hex`` (or ``canonical_hex`` when ``"reencode": false``);
- envelope/errors invalid: decoding fails with exactly ``error``;
- frames valid: decode → body JSON (bin as ``{"$bin": hex}``) equals ``frame``; re-encode
  gives ``hex``; frames invalid: exactly ``outcome`` under ``max_frame``;
- frames unknown: decodes to an ``UnknownFrame`` with the given ``t``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crosswire._envelope import decode_event, encode_event
from crosswire._errorinfo import decode_error_info, encode_error_info
from crosswire._exceptions import EnvelopeDecodeError, FrameDecodeError
from crosswire._jsonform import event_to_dict
from crosswire._workers.frames import UnknownFrame, decode_frame, encode_frame

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"


def _files(kind: str, sub: str) -> list[Path]:
    return sorted((VECTORS / kind / sub).glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name}: a vector file holds one JSON object"
    assert data.get("name") == path.stem, f"{path.name}: name {data.get('name')!r} != file stem"
    return data


def _params(kind: str, sub: str) -> Any:
    files = _files(kind, sub)
    return pytest.mark.parametrize("path", files, ids=[p.stem for p in files])


def _expected_bytes(vector: dict[str, Any]) -> bytes:
    if vector.get("reencode", True) is False:
        assert "canonical_hex" in vector, f"{vector['name']}: reencode false needs canonical_hex"
        return bytes.fromhex(vector["canonical_hex"])
    return bytes.fromhex(vector["hex"])


def test_vector_counts() -> None:
    assert len(_files("envelope", "valid")) >= 30
    assert len(_files("envelope", "invalid")) >= 20
    assert _files("errors", "valid") and _files("errors", "invalid")
    assert _files("frames", "valid") and _files("frames", "invalid") and _files("frames", "unknown")


# -- envelope ----------------------------------------------------------------------------


@_params("envelope", "valid")
def test_envelope_valid(path: Path) -> None:
    vector = _load(path)
    event = decode_event(bytes.fromhex(vector["hex"]))
    assert event_to_dict(event) == vector["event"]
    assert encode_event(event) == _expected_bytes(vector)
    # and the canonical bytes are a fixed point
    assert encode_event(decode_event(_expected_bytes(vector))) == _expected_bytes(vector)


@_params("envelope", "invalid")
def test_envelope_invalid(path: Path) -> None:
    vector = _load(path)
    with pytest.raises(EnvelopeDecodeError) as info:
        decode_event(bytes.fromhex(vector["hex"]))
    assert info.value.code == vector["error"], str(info.value)


# -- error envelope ----------------------------------------------------------------------


@_params("errors", "valid")
def test_errors_valid(path: Path) -> None:
    vector = _load(path)
    info = decode_error_info(bytes.fromhex(vector["hex"]))
    assert msgspec.to_builtins(info) == vector["error_info"]
    assert encode_error_info(info) == _expected_bytes(vector)


@_params("errors", "invalid")
def test_errors_invalid(path: Path) -> None:
    vector = _load(path)
    with pytest.raises(EnvelopeDecodeError) as info:
        decode_error_info(bytes.fromhex(vector["hex"]))
    assert info.value.code == vector["error"], str(info.value)


# -- frames ------------------------------------------------------------------------------


def _json_form(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dict):
        return {k: _json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_form(v) for v in value]
    return value


@_params("frames", "valid")
def test_frames_valid(path: Path) -> None:
    vector = _load(path)
    raw = bytes.fromhex(vector["hex"])
    decoded = decode_frame(raw)
    assert decoded is not None, "a whole frame decoded as incomplete"
    frame, used = decoded
    assert used == len(raw)
    assert not isinstance(frame, UnknownFrame)
    assert _json_form(msgspec.to_builtins(frame, builtin_types=(bytes,))) == vector["frame"]
    assert encode_frame(frame) == raw


@_params("frames", "invalid")
def test_frames_invalid(path: Path) -> None:
    vector = _load(path)
    raw = bytes.fromhex(vector["hex"])
    if vector["outcome"] == "incomplete":
        assert decode_frame(raw, vector["max_frame"]) is None
        return
    with pytest.raises(FrameDecodeError) as info:
        decode_frame(raw, vector["max_frame"])
    assert info.value.outcome == vector["outcome"], str(info.value)


@_params("frames", "unknown")
def test_frames_unknown(path: Path) -> None:
    vector = _load(path)
    raw = bytes.fromhex(vector["hex"])
    decoded = decode_frame(raw)
    assert decoded is not None
    frame, used = decoded
    assert used == len(raw)
    assert isinstance(frame, UnknownFrame)
    assert frame.t == vector["t"]
