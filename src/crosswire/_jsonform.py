"""The CloudEvents structured JSON form of an event: for humans, logs and interop.

``data`` is inlined as JSON when ``datacontenttype`` is a JSON type, as text for
``text/*``, and base64 in ``data_base64`` otherwise (CloudEvents JSON format §3.1).
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import msgspec

from ._envelope import JSON_ATTRIBUTES, RESERVED_NAMES, Event, classify_validation_error
from ._exceptions import EnvelopeDecodeError

__all__ = ["event_from_dict", "event_from_json", "event_to_dict", "event_to_json", "is_json_type"]


_json_encoder = msgspec.json.Encoder()


@functools.lru_cache(maxsize=256)
def is_json_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def event_to_dict(event: Event[Any]) -> dict[str, Any]:
    """The CloudEvents JSON form as a dict (attributes and extensions flattened)."""
    out: dict[str, Any] = {}
    for name in JSON_ATTRIBUTES:
        value = getattr(event, name)
        if value is not None and not (name in ("cwversion", "attempt") and value == 1):
            out[name] = value
    for name, value in event.extensions.items():
        out[name] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    if event.data is not None:
        if is_json_type(event.datacontenttype):
            try:
                out["data"] = msgspec.json.decode(event.data)
            except (msgspec.DecodeError, UnicodeDecodeError):
                out["data_base64"] = base64.b64encode(event.data).decode()
        else:
            out["data_base64"] = base64.b64encode(event.data).decode()
    return out


def event_to_json(event: Event[Any]) -> bytes:
    """The CloudEvents structured JSON form (``application/cloudevents+json``)."""
    return _json_encoder.encode(event_to_dict(event))


def event_from_dict(obj: dict[str, Any]) -> Event[Any]:
    """Read the CloudEvents JSON form.

    :raises EnvelopeDecodeError: as for :func:`decode_event`.
    """
    if not isinstance(obj, dict):
        raise EnvelopeDecodeError("malformed", "a CloudEvent in JSON must be an object")
    fields: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for name, value in obj.items():
        if name == "data":
            if isinstance(value, str) and not is_json_type(obj.get("datacontenttype")):
                fields["data"] = value.encode()
            else:
                fields["data"] = msgspec.json.encode(value)
        elif name == "data_base64":
            if not isinstance(value, str):
                raise EnvelopeDecodeError("wrong_type", "data_base64 must be a string")
            try:
                fields["data"] = base64.b64decode(value, validate=True)
            except ValueError as exc:
                raise EnvelopeDecodeError("invalid_value", f"data_base64: {exc}") from None
        elif name in RESERVED_NAMES:
            fields[name] = value
        else:
            if value is None:
                continue
            if isinstance(value, float) or not isinstance(value, (str, int, bool)):
                raise EnvelopeDecodeError("wrong_type", f"extension {name!r} must be a string, integer or boolean")
            extensions[name] = value
    if extensions:
        fields["extensions"] = extensions
    try:
        return msgspec.convert(fields, Event)
    except msgspec.ValidationError as exc:
        raise classify_validation_error(exc) from None


def event_from_json(data: bytes | str) -> Event[Any]:
    """Parse the CloudEvents structured JSON form.

    :raises EnvelopeDecodeError: for invalid JSON (``malformed``) or an invalid event.
    """
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise EnvelopeDecodeError("malformed", f"invalid JSON: {exc}") from None
    return event_from_dict(obj)
