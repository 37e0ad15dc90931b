"""Regenerate spec/vectors/ from the Python reference encoder.

Run: ``python tools/gen_vectors.py`` (``make vectors``). The files are committed; the
Python, Go and Rust suites check them, so a change here that breaks another binding
fails its tests.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
from pathlib import Path
from typing import Annotated, Any

import msgspec

from crosswire._envelope import Event, decode_event, encode_event
from crosswire._errorinfo import ErrorCode, ErrorInfo, decode_error_info, encode_error_info
from crosswire._exceptions import EnvelopeDecodeError, FrameDecodeError
from crosswire._jsonform import event_to_dict
from crosswire._workers import frames as fr

ROOT = Path(__file__).resolve().parent.parent / "spec" / "vectors"
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
raw = msgspec.msgpack.encode


def base(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"specversion": "1.0", "id": "evt-1", "source": "/orders/api", "type": "order.created"}
    d.update(kw)
    return d


def ev(**kw: Any) -> Event[Any]:
    return Event(**base(**kw))


def write(kind: str, sub: str, name: str, obj: dict[str, Any]) -> None:
    path = ROOT / kind / sub / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, **obj}, indent=1, ensure_ascii=False) + "\n")


def valid_event(name: str, desc: str, event: Event[Any]) -> None:
    b = encode_event(event)
    assert encode_event(decode_event(b)) == b
    write("envelope", "valid", name, {"description": desc, "hex": b.hex(), "event": event_to_dict(event)})


def noncanonical_event(name: str, desc: str, data: bytes) -> None:
    event = decode_event(data)
    canon = encode_event(event)
    assert canon != data, name
    write(
        "envelope",
        "valid",
        name,
        {
            "description": desc,
            "hex": data.hex(),
            "reencode": False,
            "canonical_hex": canon.hex(),
            "event": event_to_dict(event),
        },
    )


def invalid_event(name: str, desc: str, data: bytes, code: str) -> None:
    try:
        decode_event(data)
    except EnvelopeDecodeError as exc:
        assert exc.code == code, (name, exc.code, exc)
    else:
        raise AssertionError(f"{name} decoded")
    write("envelope", "invalid", name, {"description": desc, "hex": data.hex(), "error": code})


def envelope_vectors() -> None:
    V = valid_event
    V("minimal", "only the four required attributes", ev())
    V("with-time", "RFC 3339 time with Z", ev(time="2026-11-28T10:00:00Z"))
    V(
        "time-offset",
        "RFC 3339 time with a numeric offset and nanoseconds",
        ev(time="2026-11-28T10:00:00.123456789+02:00"),
    )
    V("subject", "subject set", ev(subject="order-42"))
    V(
        "json-data",
        "JSON payload embedded as data in the JSON form",
        ev(datacontenttype="application/json", data=b'{"sku":"A-1","qty":2}'),
    )
    V(
        "json-suffix-data",
        "+json media type embeds data too",
        ev(datacontenttype="application/vnd.order+json", data=b"[1,2,3]"),
    )
    V(
        "msgpack-data",
        "MessagePack payload, base64 in JSON",
        ev(datacontenttype="application/msgpack", data=raw({"sku": "A-1", "qty": 2})),
    )
    V("binary-data", "arbitrary bytes, every byte value", ev(data=bytes(range(256))))
    V("empty-data", "present but empty data", ev(data=b""))
    V("large-data", "64 KiB payload (bin32 header)", ev(data=bytes(i % 251 for i in range(65536))))
    V("data-bin16", "300-byte payload (bin16 header)", ev(data=b"x" * 300))
    V("dataschema", "dataschema URI", ev(dataschema="https://example.com/schemas/order-v1.json"))
    V(
        "unicode",
        "non-ASCII text in every string attribute",
        ev(id="événement-1", source="/commandes/été", type="commande.créée", subject="客户-42 🚀"),
    )
    V(
        "unicode-json-data",
        "non-ASCII JSON data",
        ev(datacontenttype="application/json", data='{"name":"Zoë ☕"}'.encode()),
    )
    V("correlation", "correlation and causation ids", ev(correlationid="corr-1", causationid="evt-0"))
    V("traceparent", "W3C trace context", ev(traceparent=TP, tracestate="congo=t61rcWkgMzE"))
    V("partitionkey", "order key", ev(partitionkey="order-42"))
    V("idempotencykey", "explicit idempotency key", ev(idempotencykey="pay-42-once"))
    V("deadline", "deadline in unix ms (uint64)", ev(deadline=1795860000000))
    V("deadline-small", "small deadline (uint8)", ev(deadline=200))
    V("deadline-zero", "deadline 0", ev(deadline=0))
    V("attempt-3", "third attempt", ev(attempt=3))
    V("attempt-large", "attempt needing uint16", ev(attempt=1000))
    V("ext-string", "one string extension", ev(extensions={"tenant": "acme"}))
    V(
        "ext-int",
        "integer extensions, positive and negative, several widths",
        ev(extensions={"a": 1, "b": -1, "c": 300, "d": -40000, "e": 2**40, "f": -(2**63)}),
    )
    V("ext-bool", "boolean extensions", ev(extensions={"yes": True, "no": False}))
    V("ext-bytes", "binary extension (base64 in JSON)", ev(extensions={"sig": b"\x00\x01\xfe\xff"}))
    V("ext-sorted", "extension keys written sorted by bytes", ev(extensions={"zz": 1, "a1": 2, "m": 3, "a": 4}))
    V("ext-max-name", "20-character extension name", ev(extensions={"abcdefghij0123456789": "x"}))
    V("ext-32", "the maximum 32 extensions", ev(extensions={f"x{i:02d}": i for i in range(32)}))
    V(
        "full",
        "every attribute present",
        ev(
            subject="order-42",
            time="2026-11-28T10:00:00.5Z",
            datacontenttype="application/json",
            dataschema="urn:schema:order:1",
            data=b'{"ok":true}',
            correlationid="c-1",
            causationid="e-0",
            traceparent=TP,
            tracestate="a=b",
            partitionkey="order-42",
            idempotencykey="i-1",
            deadline=1795860000000,
            attempt=2,
            extensions={"tenant": "acme", "prio": 5},
        ),
    )
    V("max-id", "id of exactly 256 characters", ev(id="i" * 256))
    V("max-id-multibyte", "id of 256 two-byte characters: limits count characters", ev(id="é" * 256))
    V("long-type", "type of 256 bytes (str8 boundary crossed)", ev(type="t" * 256))
    V("source-uri", "absolute URI source", ev(source="https://shop.example.com/orders"))
    V("str16-subject", "subject long enough for a str16 header", ev(subject="s" * 300))
    # compatibility
    noncanonical_event(
        "newer-writer-extra-keys",
        "a newer minor version added keys this reader does not know: ignored",
        _map16(base(futurefield="x", cwhints={"a": 1}, attempt=2)),
    )
    noncanonical_event(
        "newer-writer-unknown-nested",
        "unknown key holding an array and a nil",
        _map16(base(routingpath=["a", "b"], extra=None)),
    )
    noncanonical_event(
        "older-writer-fixmap", "an older writer used a fixmap header: accepted, canonical is map16", raw(base())
    )
    noncanonical_event(
        "older-writer-no-attempt", "older writer without cwversion/attempt: defaults 1 filled", raw(base(subject="s"))
    )
    noncanonical_event(
        "explicit-defaults",
        "cwversion and attempt written as 1 explicitly: omitted canonically",
        _map16(base(cwversion=1, attempt=1)),
    )
    noncanonical_event("wide-int", "attempt written as uint32: canonical uses the smallest int", _with_raw_attempt())
    noncanonical_event(
        "key-order",
        "attributes in another order: canonical order restored",
        _map16({"type": "order.created", "id": "evt-1", "specversion": "1.0", "source": "/orders/api"}),
    )

    I = invalid_event
    good = encode_event(ev(subject="order-42", data=b"abc"))
    I("empty-input", "zero bytes", b"", "truncated")
    I("truncated-header", "map16 header cut short", good[:2], "truncated")
    I("truncated-middle", "cut in the middle of a string", good[: len(good) // 2], "truncated")
    I("truncated-last-byte", "last byte missing", good[:-1], "truncated")
    I("trailing-bytes", "a valid envelope followed by garbage", good + b"\x00", "malformed")
    I("not-a-map", "top level is an array", raw(["1.0", "id"]), "malformed")
    I("not-msgpack", "reserved opcode 0xc1", b"\xc1", "malformed")
    I("top-level-string", "top level is a string", raw("hello"), "malformed")
    I("missing-id", "no id", _map16({k: v for k, v in base().items() if k != "id"}), "missing_field")
    I("missing-source", "no source", _map16({k: v for k, v in base().items() if k != "source"}), "missing_field")
    I("missing-type", "no type", _map16({k: v for k, v in base().items() if k != "type"}), "missing_field")
    I(
        "missing-specversion",
        "no specversion",
        _map16({k: v for k, v in base().items() if k != "specversion"}),
        "missing_field",
    )
    I("empty-id", "id is the empty string", _map16(base(id="")), "missing_field")
    I("empty-type", "type is the empty string", _map16(base(type="")), "missing_field")
    I("bad-specversion", "specversion 0.3", _map16(base(specversion="0.3")), "invalid_value")
    I("id-not-string", "id is an integer", _map16(base(id=42)), "wrong_type")
    I("data-as-string", "data is str, must be bin", _map16(base(data="abc")), "wrong_type")
    I("attempt-as-string", "attempt is a string", _map16(base(attempt="2")), "wrong_type")
    I("deadline-negative", "deadline is negative", _map16(base(deadline=-5)), "invalid_value")
    I("attempt-zero", "attempt 0", _map16(base(attempt=0)), "invalid_value")
    I("bad-traceparent", "traceparent with upper-case hex", _map16(base(traceparent=TP.upper())), "invalid_value")
    I("bad-time", "time that is not RFC 3339", _map16(base(time="28/11/2026 10:00")), "invalid_value")
    I("unsupported-major", "cwversion 2", _map16(base(cwversion=2)), "unsupported_version")
    I(
        "ext-upper-case",
        "extension name with upper case",
        _map16(base(extensions={"Tenant": "x"})),
        "invalid_extension_name",
    )
    I(
        "ext-too-long-name",
        "21-character extension name",
        _map16(base(extensions={"a" * 21: "x"})),
        "invalid_extension_name",
    )
    I(
        "ext-shadows-attribute",
        "extension named like an attribute",
        _map16(base(extensions={"subject": "x"})),
        "invalid_extension_name",
    )
    I("ext-dash", "extension name with a dash", _map16(base(extensions={"my-ext": "x"})), "invalid_extension_name")
    I("ext-float", "float extension value", _map16(base(extensions={"ratio": 0.5})), "wrong_type")
    I("ext-array", "array extension value", _map16(base(extensions={"list": [1]})), "wrong_type")
    I("ext-too-many", "33 extensions", _map16(base(extensions={f"x{i:02d}": i for i in range(33)})), "too_large")
    I("ext-value-too-large", "4097-byte extension value", _map16(base(extensions={"big": "x" * 4097})), "too_large")
    I("id-too-long", "257-byte id", _map16(base(id="i" * 257)), "too_large")
    I("type-too-long", "257-byte type", _map16(base(type="t" * 257)), "too_large")
    I("id-too-long-multibyte", "257 two-byte characters", _map16(base(id="é" * 257)), "too_large")
    I("cwversion-string", "cwversion of the wrong type", _map16(base(cwversion="1")), "wrong_type")
    I(
        "time-non-ascii-digits",
        "time with Arabic-Indic digits",
        _map16(base(time="٢٠٢٦-11-28T10:00:00Z")),
        "invalid_value",
    )
    I(
        "time-letters-for-digits",
        "time with the letter d in place of every digit",
        _map16(base(time="dddd-dd-ddTdd:dd:ddZ")),
        "invalid_value",
    )
    I(
        "traceparent-letters-for-hex",
        "traceparent with the letter h in place of every hex digit",
        _map16(base(traceparent="hh-" + "h" * 32 + "-" + "h" * 16 + "-hh")),
        "invalid_value",
    )
    I("extensions-not-map", "extensions is an array", _map16(base(extensions=["a"])), "wrong_type")
    I(
        "invalid-utf8",
        "id holds invalid UTF-8",
        _map16(base()).replace(b"\xa5evt-1", b"\xa5evt\xff\xfe"),
        "invalid_value",
    )


def _map16(d: dict[str, Any]) -> bytes:
    body = b"".join(raw(k) + raw(v) for k, v in d.items())
    return b"\xde" + struct.pack(">H", len(d)) + body


def _with_raw_attempt() -> bytes:
    d = base()
    body = b"".join(raw(k) + raw(v) for k, v in d.items()) + raw("attempt") + b"\xce\x00\x00\x00\x02"
    return b"\xde" + struct.pack(">H", len(d) + 1) + body


def error_vectors() -> None:
    def V(name: str, desc: str, info: ErrorInfo) -> None:
        b = encode_error_info(info)
        assert encode_error_info(decode_error_info(b)) == b
        write("errors", "valid", name, {"description": desc, "hex": b.hex(), "error_info": msgspec.to_builtins(info)})

    def I(name: str, desc: str, data: bytes, code: str) -> None:
        try:
            decode_error_info(data)
        except EnvelopeDecodeError as exc:
            assert exc.code == code, (name, exc)
        else:
            raise AssertionError(name)
        write("errors", "invalid", name, {"description": desc, "hex": data.hex(), "error": code})

    V("timeout", "a timeout from Go", ErrorInfo.of(ErrorCode.TIMEOUT, "deadline exceeded", runtime="go"))
    V(
        "permanent",
        "invalid argument, not retryable",
        ErrorInfo.of(ErrorCode.INVALID_ARGUMENT, "qty must be > 0", runtime="rust"),
    )
    V(
        "retry-after",
        "rate limited with retry_after",
        ErrorInfo.of(ErrorCode.RESOURCE_EXHAUSTED, "slow down", retry_after=1.5),
    )
    V(
        "details",
        "details sorted by key",
        ErrorInfo.of(ErrorCode.HANDLER_ERROR, "boom", details={"zone": "eu", "attempt": "3", "b": ""}),
    )
    V("empty-message", "empty message is allowed", ErrorInfo.of(ErrorCode.INTERNAL, ""))
    V(
        "override-retryable",
        "a normally retryable code marked permanent",
        ErrorInfo.of(ErrorCode.UNAVAILABLE, "gone for good", retryable=False),
    )
    V("unicode", "non-ASCII message", ErrorInfo.of(ErrorCode.REJECTED, "commande refusée ✋", runtime="python"))
    V(
        "worker-lost",
        "node-side worker_lost",
        ErrorInfo.of(ErrorCode.WORKER_LOST, "worker exited with signal 9", runtime="node"),
    )
    for code in ErrorCode:
        V(f"code-{code.value}", f"code {code.value} with its default retryable", ErrorInfo.of(code, code.value))
    ok = {"code": "timeout", "message": "m", "retryable": True, "runtime": "go"}
    I("unknown-code", "a code outside the closed set", raw({**ok, "code": "teapot"}), "invalid_value")
    I("missing-code", "no code", raw({k: v for k, v in ok.items() if k != "code"}), "missing_field")
    I("missing-retryable", "no retryable", raw({k: v for k, v in ok.items() if k != "retryable"}), "missing_field")
    I("retryable-not-bool", "retryable is 1", raw({**ok, "retryable": 1}), "wrong_type")
    I("negative-retry-after", "retry_after < 0", raw({**ok, "retry_after": -1.0}), "invalid_value")
    I("truncated", "cut short", raw(ok)[:-3], "truncated")


def frame_vectors() -> None:
    def bin_json(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return {"$bin": obj.hex()}
        if isinstance(obj, dict):
            return {k: bin_json(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [bin_json(v) for v in obj]
        return obj

    def V(name: str, frame: Any) -> None:
        b = fr.encode_frame(frame)
        decoded, used = fr.decode_frame(b)  # type: ignore[misc]
        assert used == len(b) and fr.encode_frame(decoded) == b  # type: ignore[arg-type]
        body = msgspec.msgpack.decode(b[4:])
        write("frames", "valid", name, {"hex": b.hex(), "frame": bin_json(body)})

    env = encode_event(ev(data=b"\x82\xa3sku\xa3A-1\xa3qty\x02", datacontenttype="application/msgpack"))
    V(
        "hello",
        fr.Hello(
            versions=[1],
            name="pricing",
            runtime="go",
            types=["order.created", "order.*"],
            max_in_flight=64,
            max_frame=1114112,
            pid=4242,
            sdk="crosswire-go/0.1.0",
        ),
    )
    V(
        "hello-schemas",
        fr.Hello(
            versions=[1],
            name="pricing",
            runtime="go",
            types=["order.validated", "order.*", "payment.settled"],
            max_in_flight=64,
            max_frame=1114112,
            sdk="crosswire-go/0.1.0",
            schemas={
                "order.validated": ["urn:crosswire:schema:orders.Order:1", "urn:crosswire:schema:orders.Order:2"],
                "payment.settled": [],
            },
            token="kq3L0fBzv1nH5a8Qm2XcW7eRt4YuI9oP6sDgJjAlKxZ",
        ),
    )
    V(
        "hello-minimal",
        fr.Hello(versions=[1, 2], name="w", runtime="rust", types=["a"], max_in_flight=1, max_frame=4096),
    )
    V("welcome", fr.Welcome(version=1, max_frame=1114112, heartbeat_ms=1000, node="orders"))
    V("reject", fr.Reject(reason="unsupported protocol versions: worker speaks [2], node speaks [1]"))
    V("init", fr.Init())
    V("ready", fr.Ready())
    V("deliver", fr.Deliver(id=1, envelope=env, deadline=1795860000000))
    V("deliver-no-deadline", fr.Deliver(id=70000, envelope=env, deadline=0))
    V("result-ok", fr.Result(id=1, ok=True, start_ns=1795860000000000000, duration_ns=12345))
    V(
        "result-error",
        fr.Result(
            id=2,
            ok=False,
            error=ErrorInfo.of(ErrorCode.UNAVAILABLE, "db down", retry_after=0.25, runtime="go"),
            start_ns=1795860000000000000,
            duration_ns=99,
        ),
    )
    V(
        "result-emitted",
        fr.Result(
            id=3,
            ok=True,
            start_ns=1,
            duration_ns=2,
            emitted=[encode_event(ev(id="evt-2", type="order.priced", causationid="evt-1"))],
        ),
    )
    V("heartbeat", fr.Heartbeat())
    V("drain", fr.Drain())
    V("drained", fr.Drained())
    V("goodbye", fr.Goodbye(reason="drained"))
    V("goodbye-bare", fr.Goodbye())
    V("error", fr.ErrorFrame(message="frame too large: 2000000 bytes > max 1114112"))

    def I(name: str, data: bytes, outcome: str, max_frame: int = fr.DEFAULT_MAX_FRAME) -> None:
        try:
            got = fr.decode_frame(data, max_frame)
        except FrameDecodeError as exc:
            assert exc.outcome == outcome, (name, exc)
        else:
            assert got is None and outcome == "incomplete", (name, got)
        write("frames", "invalid", name, {"hex": data.hex(), "max_frame": max_frame, "outcome": outcome})

    def framed(body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + body

    hb = fr.encode_frame(fr.Heartbeat())
    I("short-header", hb[:3], "incomplete")
    I("short-body", hb[:-1], "incomplete")
    I("too-large", struct.pack(">I", 0xFFFFFFFF), "too_large")
    I("too-large-small-max", struct.pack(">I", 5000) + b"\x80" * 10, "too_large", 4096)
    I("empty", struct.pack(">I", 0), "empty")
    I("body-not-map", framed(raw([1, 2])), "malformed")
    I("body-garbage", framed(b"\xc1\xc1"), "malformed")
    I("body-trailing", framed(raw({"t": "heartbeat"}) + b"\x00"), "malformed")
    I("no-type", framed(raw({"id": 1})), "malformed")
    I("type-not-string", framed(raw({"t": 7})), "malformed")
    I("deliver-missing-envelope", framed(raw({"t": "deliver", "id": 1, "deadline": 0})), "invalid")
    I("deliver-id-string", framed(raw({"t": "deliver", "id": "1", "envelope": b"", "deadline": 0})), "invalid")
    I(
        "result-ok-not-bool",
        framed(raw({"t": "result", "id": 1, "ok": "yes", "start_ns": 0, "duration_ns": 0})),
        "invalid",
    )
    I(
        "hello-types-not-list",
        framed(
            raw(
                {
                    "t": "hello",
                    "versions": [1],
                    "name": "w",
                    "runtime": "go",
                    "types": "a",
                    "max_in_flight": 1,
                    "max_frame": 4096,
                }
            )
        ),
        "invalid",
    )
    # an unknown frame type is not an error: receivers skip it (recorded as a valid vector with reencode false)
    unknown = framed(raw({"t": "future", "x": 1}))
    write("frames", "unknown", "future-type", {"hex": unknown.hex(), "t": "future"})


# -- payload vectors (spec/payloads.md) ---------------------------------------------------
# The typed schemas every SDK declares natively for these vectors. Integer fields carry
# their width as msgspec bounds, so Python refuses what a Go int8 or a Rust u32 cannot hold.


def _int_range(bits: int, signed: bool) -> Any:
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


I8, I16, I32, I64 = (_int_range(b, True) for b in (8, 16, 32, 64))
U8, U16, U32 = (_int_range(b, False) for b in (8, 16, 32))
U64 = Annotated[int, msgspec.Meta(ge=0)]  # msgspec bounds stop at int64: the top is checked in __post_init__
Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class PCustomer(msgspec.Struct):
    id: I64  # type: ignore[valid-type]
    name: str
    email: str | None = None


class PItem(msgspec.Struct):
    sku: str
    qty: U32  # type: ignore[valid-type]
    price: float


class POrder(msgspec.Struct):
    order_id: I64  # type: ignore[valid-type]
    customer: PCustomer
    items: list[PItem]
    note: str | None = None
    tags: dict[str, str] = {}
    paid_at: Timestamp | None = None  # type: ignore[valid-type]
    blob: bytes = b""


class PNumbers(msgspec.Struct):
    i8: I8  # type: ignore[valid-type]
    u8: U8  # type: ignore[valid-type]
    i16: I16  # type: ignore[valid-type]
    u16: U16  # type: ignore[valid-type]
    i32: I32  # type: ignore[valid-type]
    u32: U32  # type: ignore[valid-type]
    i64: I64  # type: ignore[valid-type]
    u64: U64  # type: ignore[valid-type]
    f64: float

    def __post_init__(self) -> None:
        if self.u64 >= 2**64:
            raise ValueError("u64 does not fit 64 bits")


PAYLOAD_SCHEMAS: dict[str, Any] = {"Order": POrder, "Numbers": PNumbers}
UTC = dt.UTC


def _expected(value: Any) -> Any:
    """A decoded value as vector JSON: bytes as {"$bin": hex}, timestamps as {"$time": RFC 3339 UTC}."""
    if isinstance(value, msgspec.Struct):
        return {f: _expected(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dt.datetime):
        return {"$time": value.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


def _order(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "order_id": 4242,
        "customer": {"id": 7, "name": "Ada"},
        "items": [{"sku": "A-1", "qty": 2, "price": 19.99}],
    }
    d.update(kw)
    return d


def _numbers(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {f: 0 for f in PNumbers.__struct_fields__}
    d["f64"] = 0.0
    d.update(kw)
    return d


def _to_json(value: Any) -> str:
    """JSON text of a plain value the way msgspec writes it (bytes base64, datetimes RFC 3339)."""
    return msgspec.json.encode(value).decode()


def _decode_both(schema: str, mp: bytes | None, js: str | None) -> Any:
    tp = PAYLOAD_SCHEMAS[schema]
    got = [msgspec.msgpack.decode(mp, type=tp)] if mp is not None else []
    got += [msgspec.json.decode(js.encode(), type=tp)] if js is not None else []
    assert all(_expected(g) == _expected(got[0]) for g in got), (schema, got)
    return got[0]


def payload_valid(
    name: str, desc: str, schema: str, value: Any, *, msgpack: bytes | None = None, json_text: str | None = None
) -> None:
    """``value`` (a Struct or a plain dict) gives both forms unless one is passed raw."""
    if value is not None:
        msgpack = msgspec.msgpack.encode(value) if msgpack is None else msgpack
        json_text = _to_json(value) if json_text is None else json_text
    decoded = _decode_both(schema, msgpack, json_text)
    obj: dict[str, Any] = {"description": desc, "schema": schema}
    if msgpack is not None:
        obj["msgpack"] = msgpack.hex()
    if json_text is not None:
        obj["json"] = json_text
    obj["expected"] = _expected(decoded)
    write("payloads", "valid", name, obj)


def payload_invalid(
    name: str, desc: str, schema: str, value: Any, *, msgpack: bytes | None = None, json_text: str | None = None
) -> None:
    if value is not None:
        msgpack = msgspec.msgpack.encode(value) if msgpack is None else msgpack
        json_text = _to_json(value) if json_text is None else json_text
    tp = PAYLOAD_SCHEMAS[schema]
    for form, decode, data in (
        ("msgpack", msgspec.msgpack.decode, msgpack),
        ("json", msgspec.json.decode, json_text.encode() if json_text is not None else None),
    ):
        if data is None:
            continue
        try:
            decode(data, type=tp)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        else:
            raise AssertionError(f"{name}: the {form} form decoded")
    obj: dict[str, Any] = {"description": desc, "schema": schema}
    if msgpack is not None:
        obj["msgpack"] = msgpack.hex()
    if json_text is not None:
        obj["json"] = json_text
    obj["error"] = "invalid_argument"
    write("payloads", "invalid", name, obj)


def payload_vectors() -> None:
    V, I = payload_valid, payload_invalid
    t0 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    full = POrder(
        order_id=4242,
        customer=PCustomer(id=7, name="Ada Lovelace", email="ada@example.com"),
        items=[PItem(sku="A-1", qty=2, price=19.99), PItem(sku="B-22", qty=1, price=0.5)],
        note="leave at the door",
        tags={"channel": "web", "prio": "high"},
        paid_at=dt.datetime(2026, 11, 28, 10, 0, 0, 250000, tzinfo=UTC),
        blob=b"\x00\x01\xfe\xff",
    )
    V("order-full", "every field set, encoded from the typed struct", "Order", full)
    V(
        "order-defaults-encoded",
        "optional fields at their defaults, as the Python node writes them (nil and empty map present)",
        "Order",
        POrder(order_id=1, customer=PCustomer(id=1, name="B"), items=[]),
    )
    V(
        "order-missing-optional",
        "optional fields absent: note, email, paid_at None; tags {}; blob empty",
        "Order",
        _order(),
    )
    V(
        "order-null-optional",
        "optional fields given as null/nil: the same as absent",
        "Order",
        _order(note=None, paid_at=None, customer={"id": 7, "name": "Ada", "email": None}),
    )
    V(
        "order-unknown-fields",
        "unknown keys at every level, of every shape, are ignored",
        "Order",
        _order(
            zz_future="x",
            version=3,
            extra_list=[1, [2, [3]], {"a": None}],
            extra_map={"k": {"deeper": [True, 1.5]}},
            customer={"id": 7, "name": "Ada", "loyalty": {"tier": "gold"}},
            items=[{"sku": "A-1", "qty": 2, "price": 19.99, "discount": 0.1, "meta": None}],
        ),
    )
    V(
        "order-field-order",
        "fields in another order than declared",
        "Order",
        {
            "items": [{"price": 1.25, "qty": 3, "sku": "Z"}],
            "note": "n",
            "customer": {"name": "C", "id": 9},
            "order_id": 5,
        },
    )
    V(
        "order-unicode",
        "non-ASCII text in strings and map keys: accents, CJK, emoji (astral plane), right-to-left",
        "Order",
        _order(
            customer={"id": 7, "name": "Zoë Ñúñez 山田 🚀"},
            note="مرحبا — ☕ «thé»",
            tags={"clé": "été", "🔑": "值"},
            items=[{"sku": "Ä-1", "qty": 1, "price": 2.0}],
        ),
    )
    V(
        "order-json-escapes",
        'JSON string escapes (\\u00e9, a surrogate pair, \\n, \\") and insignificant whitespace',
        "Order",
        None,
        json_text=(
            '{ "order_id" : 12 ,\n "customer": {"id": 1, "name": "Jos\\u00e9 \\ud83d\\ude80"},\n'
            ' "items": [ ], "note": "line1\\nline2 \\"q\\"" }'
        ),
    )
    V("order-empty-items", "an empty item list", "Order", _order(items=[]))
    V(
        "order-many-items",
        "20 items (array16 in MessagePack)",
        "Order",
        _order(items=[{"sku": f"S-{i}", "qty": i, "price": i + 0.25} for i in range(20)]),
    )
    V(
        "order-blob-all-bytes",
        "bytes: MessagePack bin, JSON base64 (standard, padded)",
        "Order",
        _order(blob=bytes(range(256))),
    )
    V("order-blob-empty", "present but empty bytes", "Order", _order(blob=b""))
    V(
        "order-paid-at-utc",
        "timestamp: MessagePack timestamp ext (32-bit form), JSON RFC 3339",
        "Order",
        _order(paid_at=t0),
    )
    V(
        "order-paid-at-micros",
        "timestamp with microseconds (timestamp 64 ext)",
        "Order",
        _order(paid_at=dt.datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)),
    )
    V(
        "order-paid-at-pre-epoch",
        "timestamp before 1970 (timestamp 96 ext)",
        "Order",
        _order(paid_at=dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
    )
    V(
        "order-paid-at-year-9999",
        "the latest timestamp every SDK holds, 9999-12-31T23:59:59Z (timestamp 96 ext)",
        "Order",
        _order(paid_at=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    )
    V(
        "order-paid-at-offset",
        "JSON timestamp with a numeric offset: the same instant as 08:00:00Z",
        "Order",
        None,
        json_text=_to_json(_order()).removesuffix("}") + ',"paid_at":"2026-11-28T10:00:00+02:00"}',
    )
    V(
        "order-large-ids",
        "int64 ids beyond 2^53 (not exact in a float64) and negative",
        "Order",
        _order(order_id=2**53 + 1, customer={"id": -(2**62) - 3, "name": "N"}),
    )
    N = _numbers
    V("numbers-zero", "every integer 0, f64 0.0", "Numbers", N())
    V(
        "numbers-max",
        "every integer at its maximum",
        "Numbers",
        N(
            i8=127,
            u8=255,
            i16=32767,
            u16=65535,
            i32=2**31 - 1,
            u32=2**32 - 1,
            i64=2**63 - 1,
            u64=2**64 - 1,
            f64=1.7976931348623157e308,
        ),
    )
    V(
        "numbers-min",
        "every integer at its minimum",
        "Numbers",
        N(i8=-128, u8=0, i16=-32768, u16=0, i32=-(2**31), u32=0, i64=-(2**63), u64=0, f64=-5e-324),
    )
    V(
        "numbers-exact",
        "integers just above 2^53 stay exact in JSON",
        "Numbers",
        N(i64=2**53 + 1, u64=2**63 + 1, i32=-7, f64=0.1),
    )
    V("numbers-float-from-int", "an integer is accepted for a float field", "Numbers", N(f64=3))
    V(
        "numbers-float-roundtrip",
        "a float whose JSON text needs a correctly rounded parser to give the same float64",
        "Numbers",
        N(f64=-1.0115940217569293e-83),
    )
    wide = {**N(), "i8": 1, "u64": 1, "f64": 1.5}
    body = b"".join(
        msgspec.msgpack.encode(k)
        + (b"\xd3" + struct.pack(">q", 1) if k == "i8" else b"\xcf" + struct.pack(">Q", 1) if k == "u64" else b"")
        + (b"\xca" + struct.pack(">f", 1.5) if k == "f64" else b"")
        + (msgspec.msgpack.encode(v) if k not in ("i8", "u64", "f64") else b"")
        for k, v in wide.items()
    )
    V(
        "numbers-wide-encodings",
        "MessagePack ints in wider encodings than needed (int64 1, uint64 1) and a float32: accepted",
        "Numbers",
        None,
        msgpack=bytes([0x80 | len(wide)]) + body,
    )

    # invalid: every one is invalid_argument
    req = _order()
    I(
        "missing-order-id",
        "a required top-level field is absent",
        "Order",
        {k: v for k, v in req.items() if k != "order_id"},
    )
    I(
        "missing-customer",
        "a required struct field is absent",
        "Order",
        {k: v for k, v in req.items() if k != "customer"},
    )
    I("missing-items", "a required list field is absent", "Order", {k: v for k, v in req.items() if k != "items"})
    I("missing-nested-name", "a required field of a nested struct is absent", "Order", _order(customer={"id": 7}))
    I(
        "missing-field-in-list-item",
        "a required field of a struct inside a list is absent",
        "Order",
        _order(items=[{"sku": "A", "qty": 1, "price": 1.0}, {"qty": 1, "price": 1.0}]),
    )
    I("empty-object", "no fields at all", "Order", {})
    I("order-id-string", "an integer field given as a numeric string", "Order", _order(order_id="4242"))
    I("order-id-bool", "an integer field given as a boolean", "Order", _order(order_id=True))
    I("order-id-float", "an integer field given as a float with a fraction", "Order", _order(order_id=42.5))
    I("order-id-float-integral", "an integer field given as a float, even 2.0", "Order", _order(order_id=2.0))
    I(
        "order-id-exponent",
        "an integer field written with an exponent in JSON",
        "Order",
        None,
        json_text=_to_json(_order()).replace('"order_id":4242', '"order_id":4.242e3'),
    )
    I("order-id-null", "a required field given as null", "Order", _order(order_id=None))
    I("customer-not-object", "a struct field given as a string", "Order", _order(customer="Ada"))
    I("items-not-list", "a list field given as an object", "Order", _order(items={"sku": "A"}))
    I("items-null", "a required list given as null", "Order", _order(items=None))
    I("tags-null", "a defaulted (non-optional) map given as null", "Order", _order(tags=None))
    I("tags-value-int", "a map value of the wrong type", "Order", _order(tags={"a": 1}))
    I("note-int", "an optional string given as an integer", "Order", _order(note=5))
    I(
        "price-string",
        "a float field given as a string",
        "Order",
        _order(items=[{"sku": "A", "qty": 1, "price": "1.0"}]),
    )
    I(
        "qty-negative",
        "an unsigned field given a negative value",
        "Order",
        _order(items=[{"sku": "A", "qty": -1, "price": 1.0}]),
    )
    I("qty-too-large", "a uint32 field given 2^32", "Order", _order(items=[{"sku": "A", "qty": 2**32, "price": 1.0}]))
    I("order-id-too-large", "an int64 field given 2^63", "Order", _order(order_id=2**63))
    I(
        "order-id-below-int64",
        "an int64 field given -2^63-1 (JSON only: MessagePack cannot express it)",
        "Order",
        None,
        json_text=_to_json(_order()).replace('"order_id":4242', f'"order_id":{-(2**63) - 1}'),
    )
    I(
        "u64-too-large",
        "a uint64 field given 2^64 (JSON only)",
        "Numbers",
        None,
        json_text=_to_json(N()).replace('"u64":0', f'"u64":{2**64}'),
    )
    I("u64-negative", "a uint64 field given -1", "Numbers", N(u64=-1))
    I("i8-too-large", "int8 given 128", "Numbers", N(i8=128))
    I("i8-too-small", "int8 given -129", "Numbers", N(i8=-129))
    I("u8-too-large", "uint8 given 256", "Numbers", N(u8=256))
    I("i16-too-large", "int16 given 32768", "Numbers", N(i16=32768))
    I("u16-too-large", "uint16 given 65536", "Numbers", N(u16=65536))
    I("i32-too-small", "int32 given -2^31-1", "Numbers", N(i32=-(2**31) - 1))
    I("u32-negative", "uint32 given -1", "Numbers", N(u32=-1))
    I("f64-bool", "a float field given a boolean", "Numbers", N(f64=True))
    I(
        "blob-bad-base64",
        "bytes in JSON without base64 padding",
        "Order",
        None,
        json_text=_to_json(_order()).removesuffix("}") + ',"blob":"AP8"}',
    )
    I(
        "blob-str-in-msgpack",
        "bytes given as a MessagePack str",
        "Order",
        None,
        msgpack=msgspec.msgpack.encode(_order(blob="AP8=")),
    )
    I("blob-array", "bytes given as an array of integers", "Order", _order(blob=[0, 255]))
    I(
        "paid-at-no-offset",
        "a timestamp without a UTC offset (JSON)",
        "Order",
        None,
        json_text=_to_json(_order(paid_at="2026-11-28T10:00:00")),
    )
    I(
        "paid-at-not-a-time",
        "a timestamp that is not RFC 3339",
        "Order",
        None,
        json_text=_to_json(_order(paid_at="yesterday")),
    )
    I("paid-at-int", "a timestamp given as an integer", "Order", _order(paid_at=1795860000))
    I(
        "paid-at-year-10000",
        "a timestamp ext after 9999-12-31T23:59:59Z: outside the years 1-9999",
        "Order",
        None,
        msgpack=msgspec.msgpack.encode(_order()).replace(b"\x83", b"\x84", 1)
        + msgspec.msgpack.encode("paid_at")
        + b"\xc7\x0c\xff"
        + struct.pack(">Iq", 0, 253402300800),
    )
    I("top-level-array", "the payload is an array, not an object", "Order", [4242, {"id": 7, "name": "A"}, []])
    I("top-level-string", "the payload is a string", "Order", "order")
    full_mp = msgspec.msgpack.encode(full)
    I("truncated", "the encoding is cut short", "Order", None, msgpack=full_mp[:-3], json_text=_to_json(full)[:-3])
    I(
        "trailing-bytes",
        "a valid payload followed by more bytes",
        "Order",
        None,
        msgpack=full_mp + b"\x00",
        json_text=_to_json(full) + " 0",
    )


# -- wildcard vectors (spec/vectors/wildcards/, NATS-style subjects) ---------------------


def wildcard_vectors() -> None:
    from crosswire._subjects import subject_matches, validate_pattern

    matches = [
        ("order.created", "order.created", True, "exact"),
        ("order.created", "order.cancelled", False, "exact, other last token"),
        ("order.created", "order.created.eu", False, "exact does not match a longer subject"),
        ("order.created", "order", False, "exact does not match a shorter subject"),
        ("order", "order.created", False, "a literal is not a prefix match"),
        ("order.created", "Order.created", False, "case-sensitive"),
        ("order.*", "order.created", True, "* matches one token"),
        ("order.*", "order", False, "* needs a token"),
        ("order.*", "order.created.eu", False, "* matches exactly one token"),
        ("*.created", "payment.created", True, "* in first position"),
        ("*", "order", True, "a lone * matches a one-token subject"),
        ("*", "order.created", False, "a lone * does not match two tokens"),
        ("order.*.eu", "order.created.eu", True, "* in the middle"),
        ("order.*.eu", "order.created.us", False, "* in the middle, other tail"),
        ("order.*.eu", "order.eu", False, "* in the middle needs its token"),
        ("*.*", "a.b", True, "two *"),
        ("*.*", "a.b.c", False, "two * match exactly two tokens"),
        ("order.>", "order.created", True, "> matches one trailing token"),
        ("order.>", "order.created.eu", True, "> matches several trailing tokens"),
        ("order.>", "order", False, "> needs at least one token"),
        ("order.>", "orders.created", False, "> after a literal that differs"),
        (">", "anything.at.all", True, "a lone > matches any subject"),
        (">", "one", True, "a lone > matches one token"),
        ("*.>", "a.b", True, "* then >"),
        ("*.>", "a", False, "* then > needs two tokens"),
        ("order.*.>", "order.created.eu.west", True, "* then > with a long tail"),
        ("order.*.>", "order.created", False, "* then > needs a token after *"),
        ("a.b.c.d.e", "a.b.c.d.e", True, "many literal tokens"),
        ("order-v2.*", "order-v2.created", True, "tokens may hold - and _"),
        ("commande.créée", "commande.créée", True, "non-ASCII tokens compare exactly"),
        ("commande.*", "commande.créée", True, "* matches a non-ASCII token"),
    ]
    invalid = [
        ("", "empty pattern"),
        ("order created", "whitespace"),
        ("order.\tcreated", "whitespace (tab)"),
        ("order..created", "empty token in the middle"),
        (".order", "empty first token"),
        ("order.", "empty last token"),
        ("order.>.eu", "> not last"),
        (">.>", "> not last (twice)"),
        ("order.cre*", "* inside a token"),
        ("order.>x", "> inside a token"),
        ("order.*x", "* with other characters"),
    ]
    # worker SDKs route one delivery to one handler: an exact registration wins, then the
    # first registered wildcard that matches (the node instead fans out to every match)
    routing = [
        (["order.*", "order.created"], "order.created", "order.created", "exact wins over an earlier wildcard"),
        (["order.>", "order.*"], "order.created", "order.>", "first registered wildcard wins"),
        (["order.*", "order.>"], "order.created", "order.*", "first registered wildcard wins (other order)"),
        (["order.*", "order.>"], "order.created.eu", "order.>", "only > matches a longer subject"),
        (["payment.*", "order.created"], "order.cancelled", None, "no match: no handler"),
        ([">", "order.created"], "order.created", "order.created", "exact wins over >"),
    ]
    cases = []
    for pattern, subject, want, desc in matches:
        assert subject_matches(pattern, subject) is want, (pattern, subject)
        cases.append({"pattern": pattern, "subject": subject, "matches": want, "description": desc})
    bad = []
    for pattern, desc in invalid:
        try:
            validate_pattern(pattern)
        except ValueError:
            pass
        else:
            raise AssertionError(pattern)
        bad.append({"pattern": pattern, "description": desc})
    route = [{"patterns": p, "subject": s, "handler": h, "description": d} for p, s, h, d in routing]
    path = ROOT / "wildcards" / "subjects.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": "subjects",
        "description": "NATS-style subject patterns: * one token, a final > one or more tokens",
        "matches": cases,
        "invalid_patterns": bad,
        "routing": route,
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


# -- nesting limit (spec/protocol.md, "Nesting limit") -----------------------------------

MAX_NESTING = 64


def nesting_frame_vectors() -> None:
    """Frames nested beyond MAX_NESTING levels are malformed; at the limit they decode.

    Written without running the Python decoder, which the nesting rule is new to: the
    suites of every runtime check these files.
    """

    def framed(body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + body

    def arrays(levels: int) -> bytes:  # `levels` nested arrays, the innermost empty
        return b"\x91" * (levels - 1) + b"\x90"

    def maps(levels: int) -> bytes:  # {"a": {"a": ... {}}}
        return b"\x81\xa1a" * (levels - 1) + b"\x80"

    def I(name: str, data: bytes, desc: str, message: str | None = "nesting limit") -> None:
        obj: dict[str, Any] = {"description": desc, "hex": data.hex(), "max_frame": fr.DEFAULT_MAX_FRAME}
        obj["outcome"] = "malformed"
        if message is not None:
            obj["message_contains"] = message
        write("frames", "invalid", name, obj)

    hb = raw({"t": "heartbeat"})  # fixmap of 1
    # the body map is level 1, so a value under one of its keys starts at level 2
    I("nesting-arrays-65", framed(b"\x82" + hb[1:] + raw("x") + arrays(64)), "65 levels: the body map and 64 arrays")
    I("nesting-maps-65", framed(b"\x82" + hb[1:] + raw("x") + maps(64)), "65 levels: the body map and 64 maps")
    I(
        "nesting-mixed-65",
        framed(b"\x82" + hb[1:] + raw("x") + b"\x91\x81\xa1a" * 31 + b"\x91\x90"),
        "65 levels alternating arrays and maps",
    )
    I(
        "nesting-100k",
        framed(b"\x82" + hb[1:] + raw("x") + arrays(100_000)),
        "100,000 nested arrays in a heartbeat: malformed, never a crash",
    )
    I(
        "nesting-100k-body",
        framed(arrays(100_000)),
        "the whole body is 100,000 nested arrays (not a map either, so either message will do)",
        None,
    )
    I(
        "nesting-100k-first-key",
        framed(b"\x82" + raw("x") + arrays(100_000) + hb[1:]),
        "100,000 nested arrays before `t`",
    )
    hello = {
        "t": "hello",
        "versions": [1],
        "name": "w",
        "runtime": "go",
        "max_in_flight": 1,
        "max_frame": 4096,
    }
    body = raw(hello)
    I(
        "nesting-hello-types",
        framed(bytes([body[0] + 1]) + body[1:] + raw("types") + arrays(64)),
        "a hello whose `types` nests 65 levels: malformed (the limit is checked before the fields)",
    )
    ok = framed(b"\x82" + raw({"t": "future"})[1:] + raw("x") + arrays(63))
    write(
        "frames",
        "unknown",
        "nesting-at-limit",
        {"description": "exactly 64 levels (the body map and 63 arrays) is allowed", "hex": ok.hex(), "t": "future"},
    )


def main() -> None:
    # frames/observability (the span and log frames) is not generated here: kept
    for sub in ("envelope", "errors", "frames/valid", "frames/invalid", "frames/unknown", "payloads", "wildcards"):
        shutil.rmtree(ROOT / sub, ignore_errors=True)
    envelope_vectors()
    error_vectors()
    frame_vectors()
    nesting_frame_vectors()
    payload_vectors()
    wildcard_vectors()
    counts = {
        p.relative_to(ROOT).as_posix(): len(list(p.glob("*.json"))) for p in sorted(ROOT.glob("*/*")) if p.is_dir()
    }
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
