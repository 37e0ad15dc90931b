"""Generate spec/vectors/headers/: events in CloudEvents binary content mode (NATS).

Each valid vector is ``{name, description, direction, event, envelope_hex, headers,
body_hex}``: ``envelope_hex`` is the event as its MessagePack envelope (exact, with every
extension's type), ``event`` its CloudEvents JSON form for reading; ``direction`` is ``both`` (encoding ``event``
gives exactly ``headers`` and ``body_hex``, and decoding them gives ``event``) or
``decode`` (ingress only: structured mode, the previous format, another SDK's spelling).
Each invalid vector is ``{name, description, headers, body_hex, error}`` with a
spec/envelope.md decode code. Run: ``python tools/gen_header_vectors.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from crosswire._binary import from_binary, to_binary
from crosswire._envelope import Event, encode_event
from crosswire._exceptions import EnvelopeDecodeError
from crosswire._jsonform import event_to_dict, event_to_json

OUT = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "headers"
BASE: dict[str, Any] = {"specversion": "1.0", "id": "evt-1", "source": "/orders/api", "type": "order.created"}


def ev(**fields: Any) -> Event[Any]:
    return Event(**{**BASE, **fields})


def valid() -> list[dict[str, Any]]:
    both = [
        ("minimal", "only the required attributes; no data", ev()),
        (
            "json-data",
            "JSON data: Content-Type carries datacontenttype, the body is the data",
            ev(datacontenttype="application/json", data=b'{"order_id":4242}'),
        ),
        (
            "msgpack-data",
            "MessagePack data",
            ev(datacontenttype="application/msgpack", data=bytes.fromhex("81a86f726465725f6964cd1092")),
        ),
        (
            "empty-data-with-content-type",
            "empty data with a content type stays empty data (an empty body without one is no data)",
            ev(datacontenttype="application/octet-stream", data=b""),
        ),
        (
            "content-type-not-ascii",
            "a content type that is not printable ASCII travels percent-encoded as ce-datacontenttype",
            ev(datacontenttype="text/plain; name=caf\u00e9", data=b"x"),
        ),
        (
            "all-attributes",
            "every CloudEvents attribute and crosswire extension a header carries",
            ev(
                subject="order/4242",
                time="2026-12-01T10:00:00.000001Z",
                dataschema="urn:crosswire:schema:order:1",
                datacontenttype="text/plain; charset=utf-8",
                data=b"hello",
                correlationid="checkout-7",
                causationid="evt-0",
                traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                tracestate="vendor=opaque",
                partitionkey="order-4242",
                idempotencykey="pay-4242",
                deadline=1796112000000,
            ),
        ),
        (
            "user-extensions",
            "user extensions of each type; non-strings are listed in Crosswire-Ext-Types",
            ev(extensions={"region": "eu", "priority": 5, "urgent": True, "tag": b"\x00\xff", "neg": -7}),
        ),
        (
            "escaped-values",
            "values a header line cannot hold are percent-encoded as UTF-8 octets",
            ev(subject="line 1\r\nline 2", extensions={"note": 'caf\u00e9 "50%"'}),
        ),
    ]
    out = [
        {
            "name": n,
            "description": d,
            "direction": "both",
            "event": event_to_dict(e),
            "envelope_hex": encode_event(e).hex(),
            **_wire(e),
        }
        for n, d, e in both
    ]
    structured = ev(datacontenttype="application/json", data=b'{"a":1}', correlationid="c-1")
    previous = ev(datacontenttype="application/json", data=b'{"a":1}', partitionkey="k")
    decode_only = [
        (
            "structured-mode",
            "structured content mode: the JSON event format as the body",
            structured,
            {"Content-Type": "application/cloudevents+json; charset=utf-8"},
            event_to_json(structured),
        ),
        (
            "previous-format",
            "the previous crosswire format: the MessagePack envelope as the body, ce-* headers beside it",
            previous,
            {
                "Nats-Msg-Id": "evt-1",
                "ce-specversion": "1.0",
                "ce-id": "evt-1",
                "ce-source": "/orders/api",
                "ce-type": "order.created",
                "ce-datacontenttype": "application/json",
                "ce-partitionkey": "k",
            },
            encode_event(previous),
        ),
        (
            "previous-format-no-headers",
            "the previous crosswire format without ce-* headers",
            previous,
            {"Nats-Msg-Id": "evt-1"},
            encode_event(previous),
        ),
        (
            "datacontenttype-header-only",
            "ce-datacontenttype without Content-Type, as the CloudEvents Go SDK's NATS binding writes",
            ev(datacontenttype="application/json", data=b'{"a":1}'),
            {
                "ce-specversion": "1.0",
                "ce-id": "evt-1",
                "ce-source": "/orders/api",
                "ce-type": "order.created",
                "ce-datacontenttype": "application/json",
            },
            b'{"a":1}',
        ),
        (
            "quoted-value",
            "an RFC 7230 quoted header value is unquoted before percent-decoding",
            ev(subject='say "hi" 100%'),
            {
                "ce-specversion": "1.0",
                "ce-id": "evt-1",
                "ce-source": "/orders/api",
                "ce-type": "order.created",
                "ce-subject": '"say \\"hi\\" 100%25"',
            },
            b"",
        ),
        (
            "structured-plain-media-type",
            "structured mode under application/cloudevents (no +json suffix)",
            structured,
            {"Content-Type": "application/cloudevents"},
            event_to_json(structured),
        ),
        (
            "header-case",
            "header names are case-insensitive (another SDK's spelling)",
            ev(datacontenttype="application/json", data=b"{}", extensions={"region": "eu"}),
            {
                "Ce-Specversion": "1.0",
                "CE-ID": "evt-1",
                "ce-Source": "/orders/api",
                "ce-type": "order.created",
                "content-type": "application/json",
                "ce-region": "eu",
            },
            b"{}",
        ),
    ]
    for name, description, event, headers, body in decode_only:
        assert from_binary(headers, body) == event, name
        out.append(
            {
                "name": name,
                "description": description,
                "direction": "decode",
                "event": event_to_dict(event),
                "envelope_hex": encode_event(event).hex(),
                "headers": headers,
                "body_hex": body.hex(),
            }
        )
    return out


def _wire(event: Event[Any]) -> dict[str, Any]:
    headers, body = to_binary(event)
    assert from_binary(headers, body) == event
    return {"headers": headers, "body_hex": body.hex()}


def invalid() -> list[dict[str, Any]]:
    required = {"ce-specversion": "1.0", "ce-id": "evt-1", "ce-source": "/orders/api", "ce-type": "order.created"}
    cases = [
        ("missing-type", "ce-type absent", {k: v for k, v in required.items() if k != "ce-type"}, b""),
        ("empty-id", "ce-id empty", {**required, "ce-id": ""}, b""),
        ("bad-specversion", "specversion other than 1.0", {**required, "ce-specversion": "0.3"}, b""),
        ("deadline-not-integer", "ce-deadline is not a decimal integer", {**required, "ce-deadline": "soon"}, b""),
        ("bad-traceparent", "ce-traceparent is not W3C trace-context", {**required, "ce-traceparent": "00-xyz"}, b""),
        (
            "ext-int-not-integer",
            "an extension declared int is not an integer",
            {**required, "ce-priority": "high", "Crosswire-Ext-Types": "priority=int"},
            b"",
        ),
        (
            "ext-bytes-not-base64",
            "an extension declared bytes is not base64",
            {**required, "ce-tag": "***", "Crosswire-Ext-Types": "tag=bytes"},
            b"",
        ),
        (
            "bad-extension-name",
            "an extension name with a character outside a-z0-9",
            {**required, "ce-my_ext": "x"},
            b"",
        ),
        ("attempt-header", "ce-attempt is the broker's to say, not a header", {**required, "ce-attempt": "2"}, b""),
        (
            "deadline-too-large",
            "ce-deadline beyond an unsigned 64-bit integer",
            {**required, "ce-deadline": "18446744073709551616"},
            b"",
        ),
        ("deadline-many-digits", "ce-deadline of 30 digits", {**required, "ce-deadline": "1" * 30}, b""),
        (
            "ext-int-many-digits",
            "an int extension of 30 digits",
            {**required, "ce-n": "9" * 30, "Crosswire-Ext-Types": "n=int"},
            b"",
        ),
        (
            "non-ascii-header-name",
            "a ce- header whose name is not ASCII (a Kelvin sign, not K)",
            {**required, "ce-\u212aey": "v"},
            b"",
        ),
        (
            "deadline-underscores",
            "ce-deadline with an underscore is not a decimal integer",
            {**required, "ce-deadline": "1_000"},
            b"",
        ),
        (
            "deadline-non-ascii-digits",
            "ce-deadline in non-ASCII digits",
            {**required, "ce-deadline": "\u0661\u0662"},
            b"",
        ),
        (
            "ext-int-too-large",
            "an int extension beyond 64-bit signed",
            {**required, "ce-n": "9223372036854775808", "Crosswire-Ext-Types": "n=int"},
            b"",
        ),
        (
            "duplicate-header",
            "one header in two spellings with different values",
            {**required, "CE-TYPE": "other.type"},
            b"",
        ),
        (
            "structured-other-format",
            "structured mode in a format other than JSON",
            {"Content-Type": "application/cloudevents+avro"},
            b"\x00",
        ),
        ("batch-mode", "batch mode is not accepted", {"Content-Type": "application/cloudevents-batch+json"}, b"[]"),
        (
            "structured-not-json",
            "structured mode body is not JSON",
            {"Content-Type": "application/cloudevents+json"},
            b"{",
        ),
    ]
    out = []
    for name, description, headers, body in cases:
        try:
            from_binary(headers, body)
        except EnvelopeDecodeError as exc:
            out.append(
                {
                    "name": name,
                    "description": description,
                    "headers": headers,
                    "body_hex": body.hex(),
                    "error": exc.code,
                }
            )
        else:
            raise AssertionError(f"{name} decoded")
    return out


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for kind, vectors in (("valid", valid()), ("invalid", invalid())):
        folder = OUT / kind
        folder.mkdir(parents=True)
        for vector in vectors:
            (folder / f"{vector['name']}.json").write_text(json.dumps(vector, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(list(OUT.rglob('*.json')))} header vectors to {OUT}")


if __name__ == "__main__":
    main()
