"""The envelope: construction, MessagePack and JSON round trips, extension rules, and
interop with the official CloudEvents SDK in both directions."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
from cloudevents.v1.conversion import to_json as v1_to_json
from cloudevents.v1.http import CloudEvent as V1CloudEvent
from cloudevents.v1.http import from_json as v1_from_json
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswire import EnvelopeDecodeError, Event, decode_event, encode_event, event_from_json, event_to_json
from crosswire._envelope import RESERVED_NAMES
from crosswire._jsonform import event_to_dict

# -- Event.new ---------------------------------------------------------------------------


def test_new_fills_id_time_and_defaults() -> None:
    a = Event.new("order.created", b"{}", key="order-42", datacontenttype="application/json")
    b = Event.new("order.created")
    assert a.id != b.id
    assert len(a.id) == 32
    assert int(a.id, 16) >= 0
    assert a.specversion == "1.0"
    assert a.source == "crosswire"
    assert a.attempt == 1
    assert a.key == a.partitionkey == "order-42"
    assert a.dedup_key == a.id
    assert a.time is not None
    stamped = datetime.strptime(a.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 5
    assert Event.new("t", stamp_time=False).time is None


def test_dedup_key_prefers_idempotency_key() -> None:
    assert Event.new("t", idempotency_key="pay-1").dedup_key == "pay-1"


def test_payload_is_absent_until_attached() -> None:
    event = Event.new("t", b"1")
    with pytest.raises(AttributeError, match="typed handler"):
        _ = event.payload
    assert event.with_payload({"n": 1}).payload == {"n": 1}
    # the attached payload never travels
    back = decode_event(encode_event(event))
    assert back == event
    with pytest.raises(AttributeError):
        _ = back.payload


def test_extensions_are_sorted_canonically() -> None:
    event = Event.new("t", extensions={"zeta": 1, "alpha": "a", "mid": True})
    assert list(event.extensions) == ["alpha", "mid", "zeta"]
    assert decode_event(encode_event(event)).extensions == event.extensions


@pytest.mark.parametrize(
    ("extensions", "code", "words"),
    [
        ({"Bad": 1}, "invalid_extension_name", "'Bad'"),
        ({"my-ext": 1}, "invalid_extension_name", "'my-ext'"),
        ({"a" * 21: 1}, "invalid_extension_name", "1-20"),
        ({"id": "x"}, "invalid_extension_name", "attribute name"),
        ({"traceparent": "x"}, "invalid_extension_name", "attribute name"),
        ({"ratio": 1.5}, "wrong_type", "float"),
        ({"items": [1]}, "wrong_type", "list"),
        ({"big": 2**64}, "wrong_type", "'big'"),
        ({"text": "x" * 4097}, "too_large", "4097 characters"),
        ({"blob": b"x" * 4097}, "too_large", "4097 bytes"),
    ],
)
def test_invalid_extensions_are_refused_with_a_clear_message(extensions: dict[str, Any], code: str, words: str) -> None:
    with pytest.raises(EnvelopeDecodeError) as info:
        Event.new("t", extensions=extensions)
    assert info.value.code == code
    assert words in str(info.value)


def test_extension_limits_are_inclusive() -> None:
    event = Event.new(
        "t",
        extensions={"a" * 20: "x" * 4096, "blob": b"x" * 4096, "lo": -(2**63), "hi": 2**63 - 1},
    )
    assert decode_event(encode_event(event)) == event


def test_reserved_names_cover_every_attribute() -> None:
    fields = set(Event.__struct_fields__) | {"data_base64"}
    assert fields == set(RESERVED_NAMES)


# -- JSON form ---------------------------------------------------------------------------


def _full_event(data: bytes | None, content_type: str | None) -> Event[Any]:
    return Event(
        specversion="1.0",
        id="evt-1",
        source="/orders/api",
        type="order.created",
        subject="order-42",
        time="2026-11-28T10:00:00.5Z",
        datacontenttype=content_type,
        dataschema="urn:schema:order:1",
        data=data,
        correlationid="c-1",
        causationid="e-0",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate="a=b",
        partitionkey="order-42",
        idempotencykey="idem-1",
        deadline=1795860000000,
        attempt=3,
        extensions={"flag": True, "count": 7, "region": "eu"},
    )


def test_json_form_is_cloudevents_structured() -> None:
    event = _full_event(b'{"ok":true}', "application/json")
    form = json.loads(event_to_json(event))
    assert form["specversion"] == "1.0"
    assert form["data"] == {"ok": True}
    assert "data_base64" not in form
    assert form["partitionkey"] == "order-42"
    assert form["attempt"] == 3
    assert form["region"] == "eu"
    assert "extensions" not in form
    assert event_from_json(event_to_json(event)) == event


def test_json_form_uses_base64_for_binary_data() -> None:
    event = _full_event(b"\x00\xff\x10", "application/octet-stream")
    form = json.loads(event_to_json(event))
    assert form["data_base64"] == base64.b64encode(b"\x00\xff\x10").decode()
    assert "data" not in form
    assert event_from_json(event_to_json(event)) == event


def test_json_form_falls_back_to_base64_when_json_data_is_not_json() -> None:
    event = _full_event(b"not json", "application/json")
    form = json.loads(event_to_json(event))
    assert "data_base64" in form
    assert event_from_json(event_to_json(event)).data == b"not json"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b"{", "malformed"),
        (b"[1]", "malformed"),
        (b'{"specversion":"1.0","id":"x","source":"s"}', "missing_field"),
        (b'{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"***"}', "invalid_value"),
        (b'{"specversion":"1.0","id":"x","source":"s","type":"t","ratio":1.5}', "wrong_type"),
        (b'{"specversion":"0.3","id":"x","source":"s","type":"t"}', "invalid_value"),
    ],
)
def test_bad_json_is_refused(text: bytes, code: str) -> None:
    with pytest.raises(EnvelopeDecodeError) as info:
        event_from_json(text)
    assert info.value.code == code


# -- property: random valid events round-trip --------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
_opt_text = st.none() | _text
_hex = st.sampled_from("0123456789abcdef")
_traceparent = st.builds(
    lambda a, b, c, d: f"{a}-{b}-{c}-{d}",
    st.text(_hex, min_size=2, max_size=2),
    st.text(_hex, min_size=32, max_size=32),
    st.text(_hex, min_size=16, max_size=16),
    st.text(_hex, min_size=2, max_size=2),
)
_time = st.builds(
    lambda dt, frac, zone: dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + zone,
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31)),
    st.sampled_from(["", ".5", ".123456", ".123456789"]),
    st.sampled_from(["Z", "+02:00", "-11:30"]),
)
_ext_name = st.from_regex(r"\A[a-z0-9]{1,20}\Z").filter(lambda n: n not in RESERVED_NAMES)
_ext_value = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=50)
    | st.binary(max_size=50)
)
_events = st.builds(
    lambda **kw: Event(specversion="1.0", **kw),
    id=_text,
    source=_text,
    type=_text,
    subject=_opt_text,
    time=st.none() | _time,
    datacontenttype=st.none() | st.sampled_from(["application/octet-stream", "text/plain"]),
    dataschema=_opt_text,
    data=st.none() | st.binary(max_size=300),
    correlationid=_opt_text,
    causationid=_opt_text,
    traceparent=st.none() | _traceparent,
    tracestate=_opt_text,
    partitionkey=_opt_text,
    idempotencykey=_opt_text,
    deadline=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    attempt=st.integers(min_value=1, max_value=2**31),
    extensions=st.dictionaries(_ext_name, _ext_value, max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(_events)
def test_property_msgpack_round_trip_is_identity(event: Event[Any]) -> None:
    raw = encode_event(event)
    back = decode_event(raw)
    assert back == event
    assert encode_event(back) == raw


@settings(max_examples=300, deadline=None)
@given(_events)
def test_property_json_form_round_trips(event: Event[Any]) -> None:
    back = event_from_json(event_to_json(event))
    assert event_to_dict(back) == event_to_dict(event)
    if not any(isinstance(v, bytes) for v in event.extensions.values()):
        # binary extensions become base64 strings in JSON, as CloudEvents specifies;
        # everything else comes back identical
        assert back == event


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=10,
    )
)
def test_property_json_data_round_trips_as_json(value: Any) -> None:
    event = Event.new("t", msgspec.json.encode(value), datacontenttype="application/json")
    assert json.loads(event_to_json(event))["data"] == value
    assert event_from_json(event_to_json(event)) == event


# -- interop with the CloudEvents SDK ----------------------------------------------------

_FORMAT = JSONFormat()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_same_attributes(ours: Event[Any], attributes: dict[str, Any]) -> None:
    expected = event_to_dict(ours)
    expected.pop("data", None)
    expected.pop("data_base64", None)
    got = dict(attributes)
    if "time" in got:
        sdk_time = got.pop("time")
        sdk_time = sdk_time if isinstance(sdk_time, datetime) else _parse_time(sdk_time)
        assert sdk_time == _parse_time(expected.pop("time"))
    assert got == expected


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b'{"sku":"A-1","qty":2}', "application/json"), (b"\x00\x01binary\xff", "application/octet-stream")],
    ids=["json-data", "binary-data"],
)
def test_cloudevents_sdk_reads_crosswire_json(data: bytes, content_type: str) -> None:
    ours = _full_event(data, content_type)
    ours = msgspec.structs.replace(ours, time="2026-11-28T10:00:00.5Z")
    text = event_to_json(ours)

    core = _FORMAT.read(None, text)
    _assert_same_attributes(ours, core.get_attributes())
    legacy = v1_from_json(text)
    _assert_same_attributes(ours, dict(legacy.get_attributes()))

    if content_type == "application/json":
        assert core.get_data() == json.loads(data)
        assert legacy.data == json.loads(data)
    else:
        assert core.get_data() == data
        assert legacy.data == data
    assert core.get_extension("partitionkey") == "order-42"
    assert core.get_extension("deadline") == 1795860000000


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [({"sku": "A-1", "qty": 2, "tags": ["x"]}, "application/json"), (b"\x00\x01binary\xff", None)],
    ids=["json-data", "binary-data"],
)
def test_crosswire_reads_cloudevents_sdk_json(payload: Any, content_type: str | None) -> None:
    attributes: dict[str, Any] = {
        "id": "sdk-1",
        "source": "/sdk",
        "type": "order.created",
        "subject": "order-7",
        "time": datetime(2026, 11, 28, 10, 0, 0, 250000, tzinfo=UTC),
        "correlationid": "c-9",
        "partitionkey": "order-7",
        "region": "eu",
        "priority": 3,
    }
    if content_type:
        attributes["datacontenttype"] = content_type
    core_text = _FORMAT.write(CoreCloudEvent(dict(attributes), payload))
    legacy_attributes = {k: v for k, v in attributes.items() if k != "time"}
    legacy_attributes["time"] = "2026-11-28T10:00:00.25Z"
    legacy_text = v1_to_json(V1CloudEvent(legacy_attributes, payload))

    for text in (core_text, legacy_text):
        ours = event_from_json(text)
        assert ours.id == "sdk-1"
        assert ours.source == "/sdk"
        assert ours.type == "order.created"
        assert ours.subject == "order-7"
        assert ours.time is not None
        assert _parse_time(ours.time) == attributes["time"]
        assert ours.correlationid == "c-9"
        assert ours.partitionkey == "order-7"
        assert ours.extensions == {"priority": 3, "region": "eu"}
        if isinstance(payload, bytes):
            assert ours.data == payload
        else:
            assert ours.data is not None
            assert json.loads(ours.data) == payload
        # and it survives the binary envelope unchanged
        assert decode_event(encode_event(ours)) == ours


_NEW_OPTIONS: dict[str, tuple[str, Any]] = {
    # Event.new's keyword -> (the attribute it sets, a value)
    "subject": ("subject", "order-42"),
    "correlation_id": ("correlationid", "c-1"),
    "causation_id": ("causationid", "e-0"),
    "traceparent": ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    "key": ("partitionkey", "order-42"),
    "idempotency_key": ("idempotencykey", "idem-1"),
    "dataschema": ("dataschema", "urn:schema:order:1"),
}


@pytest.mark.parametrize("option", [*_NEW_OPTIONS, "all"])
def test_event_new_sets_each_optional_attribute_alone_and_together(option: str) -> None:
    given = _NEW_OPTIONS if option == "all" else {option: _NEW_OPTIONS[option]}
    event = Event.new("order.created", {"n": 1}, **{k: v for k, (_, v) in given.items()})
    for name, value in (attribute for attribute in _NEW_OPTIONS.values()):
        expected = value if any(a == name for a, _ in given.values()) else None
        assert getattr(event, name) == expected, name
    assert event.time is not None and event.data == msgspec.msgpack.encode({"n": 1})


def test_event_new_deadline_alone_is_unix_ms_from_now() -> None:
    before = int(time.time() * 1000)
    event = Event.new("order.created", deadline=5)
    assert before + 5000 <= (event.deadline or 0) <= int(time.time() * 1000) + 5000
    assert event.partitionkey is None and event.subject is None
