"""Envelope codec cost: crosswire vs a bare msgspec Struct vs protobuf (upb).

Times one encode + decode round trip of the same event (128-byte payload, the
attributes a typical event carries) with:

  crosswire     crosswire.encode_event / decode_event (validating, canonical)
  bare_msgspec  a msgspec Struct with the same fields and no validation
  protobuf      the same schema in proto3, compiled at run time (upb backend)

The three are interleaved in rounds so drift in machine load hits them alike; the
result per codec is the median over rounds. Prints progress, then one JSON line.

    python bench/envelope.py [--quick] [--rounds N] [--iterations N]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from crosswire import Event, decode_event, encode_event

PROTO = """
syntax = "proto3";
package crosswire.bench;

message ExtensionValue {
  oneof value {
    string text = 1;
    int64 integer = 2;
    bool flag = 3;
    bytes raw = 4;
  }
}

message Envelope {
  string specversion = 1;
  string id = 2;
  string source = 3;
  string type = 4;
  optional string subject = 5;
  optional string time = 6;
  optional string datacontenttype = 7;
  optional string dataschema = 8;
  optional bytes data = 9;
  uint32 cwversion = 10;
  optional string correlationid = 11;
  optional string causationid = 12;
  optional string traceparent = 13;
  optional string tracestate = 14;
  optional string partitionkey = 15;
  optional string idempotencykey = 16;
  optional uint64 deadline = 17;
  uint32 attempt = 18;
  map<string, ExtensionValue> extensions = 19;
}
"""


class BareEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The envelope's fields with no constraints, no hooks, no ``__dict__``."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: bytes | None = None
    cwversion: int = 1
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    partitionkey: str | None = None
    idempotencykey: str | None = None
    deadline: int | None = None
    attempt: int = 1
    extensions: dict[str, Any] = {}


def sample_event() -> Event[Any]:
    return Event.new(
        "order.created",
        bytes(range(128)),
        source="/orders/api",
        datacontenttype="application/octet-stream",
        key="order-42",
        correlationid="4bf92f3577b34da6a3ce929d0e0e4736",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )


def load_protobuf(workdir: Path) -> Any:
    """Compile PROTO with grpc_tools.protoc into ``workdir`` and import the module."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    (workdir / "cw_envelope.proto").write_text(PROTO)
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(["protoc", f"-I{workdir}", f"-I{include}", f"--python_out={workdir}", "cw_envelope.proto"])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    sys.path.insert(0, str(workdir))
    try:
        return importlib.import_module("cw_envelope_pb2")
    finally:
        sys.path.remove(str(workdir))


def protobuf_backend() -> str:
    from google.protobuf.internal import api_implementation  # type: ignore[import-untyped]

    return str(api_implementation.Type())


def build_cases(pb: Any) -> dict[str, Callable[[], object]]:
    event = sample_event()
    bare = msgspec.convert(msgspec.to_builtins(event), BareEvent)
    bare_enc = msgspec.msgpack.Encoder()
    bare_dec = msgspec.msgpack.Decoder(BareEvent)

    message = pb.Envelope()
    for name in BareEvent.__struct_fields__:
        value = getattr(event, name)
        if name == "extensions" or value is None:
            continue
        setattr(message, name, value)
    envelope_cls = pb.Envelope

    # sanity: each round trip gives back what went in
    assert decode_event(encode_event(event)) == event
    assert bare_dec.decode(bare_enc.encode(bare)) == bare
    assert envelope_cls.FromString(message.SerializeToString()) == message

    def crosswire_rt() -> object:
        return decode_event(encode_event(event))

    def bare_rt() -> object:
        return bare_dec.decode(bare_enc.encode(bare))

    def protobuf_rt() -> object:
        return envelope_cls.FromString(message.SerializeToString())

    return {"crosswire": crosswire_rt, "bare_msgspec": bare_rt, "protobuf": protobuf_rt}


def time_once(fn: Callable[[], object], iterations: int) -> float:
    """ns per call over ``iterations`` calls."""
    start = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - start) / iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, for CI smoke runs")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (7 if args.quick else 31)
    iterations = args.iterations or (5_000 if args.quick else 20_000)

    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        pb = load_protobuf(Path(tmp))
    backend = protobuf_backend()
    cases = build_cases(pb)
    sizes = {
        "crosswire": len(encode_event(sample_event())),
        "protobuf": len(pb.Envelope.FromString(b"").SerializeToString()),
    }
    print(f"protobuf backend: {backend}; {rounds} rounds x {iterations} round trips", flush=True)
    print(f"crosswire envelope: {sizes['crosswire']} bytes", flush=True)

    for fn in cases.values():  # warm up
        time_once(fn, iterations // 5)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                samples[name].append(time_once(cases[name], iterations))
            if r % max(1, rounds // 5) == 0 or r == rounds - 1:
                line = ", ".join(f"{n} {samples[n][-1]:.0f} ns" for n in names)
                print(f"round {r + 1}/{rounds}: {line}", flush=True)
    finally:
        gc.enable()

    medians = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    result = {
        "bench": "envelope",
        "ns_per_roundtrip": medians,
        "ratios": {
            "vs_bare_msgspec": round(medians["crosswire"] / medians["bare_msgspec"], 3),
            "vs_protobuf": round(medians["crosswire"] / medians["protobuf"], 3),
        },
        "protobuf_backend": backend,
        "rounds": rounds,
        "iterations": iterations,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
