"""Payloads valid by construction: values generated from a type, seeded.

The type is read with :func:`msgspec.inspect.type_info`, so msgspec Structs,
dataclasses, TypedDicts, NamedTuples, unions, literals, enums, containers and
``Annotated[..., msgspec.Meta(...)]`` bounds (``ge``/``le``/``min_length``/...) are
all understood. Every generated value is checked with ``msgspec.convert`` against
the type before it is used.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from .._exceptions import ConfigurationError
from .scenario import Payload

__all__ = ["PayloadPool", "generate", "resolve_type"]

_ALPHABET = string.ascii_letters + string.digits
_MAX_DEPTH = 8


def resolve_type(path: str) -> Any:
    """``module:Name`` → the object."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"expected module:Name for a payload type, got {path!r}")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load payload type {path!r}: {exc}") from None


class _Gen:
    def __init__(self, rng: random.Random, spec: Payload) -> None:
        self.rng = rng
        self.spec = spec

    def _len(self, bounds: tuple[int, int], lo: int | None, hi: int | None) -> int:
        a, b = bounds
        a = max(a, lo or 0)
        b = min(b, hi) if hi is not None else b
        b = max(a, b)
        return self.rng.randint(a, b)

    def value(self, t: mi.Type, depth: int = 0) -> Any:
        r = self.rng
        if isinstance(t, (mi.AnyType, mi.NoneType)):
            return None
        if isinstance(t, mi.BoolType):
            return r.random() < 0.5
        if isinstance(t, mi.IntType):
            return self._int(t)
        if isinstance(t, mi.FloatType):
            lo = t.ge if t.ge is not None else (t.gt if t.gt is not None else -1e6)
            hi = t.le if t.le is not None else (t.lt if t.lt is not None else 1e6)
            v = r.uniform(lo, hi)
            if t.gt is not None and v <= t.gt:
                v = t.gt + (hi - t.gt) / 2
            if t.lt is not None and v >= t.lt:
                v = lo + (t.lt - lo) / 2
            return v
        if isinstance(t, mi.StrType):
            if t.pattern is not None:
                raise ConfigurationError(
                    f"cannot generate strings for the pattern {t.pattern!r}: give the field a default, "
                    "or use payload kind 'samples' or 'fixed'"
                )
            n = self._len(self.spec.str_len, t.min_length, t.max_length)
            return "".join(r.choices(_ALPHABET, k=n))
        if isinstance(t, (mi.BytesType, mi.ByteArrayType, mi.MemoryViewType)):
            n = self._len(self.spec.bytes_len, t.min_length, t.max_length)
            return r.randbytes(n)
        if isinstance(t, mi.DateTimeType):
            base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=r.randrange(365 * 86400))
            return base if t.tz is not False else base.replace(tzinfo=None)
        if isinstance(t, mi.DateType):
            return dt.date(2026, 1, 1) + dt.timedelta(days=r.randrange(365))
        if isinstance(t, mi.TimeType):
            return dt.time(r.randrange(24), r.randrange(60), r.randrange(60))
        if isinstance(t, mi.TimeDeltaType):
            return dt.timedelta(seconds=r.randrange(86400))
        if isinstance(t, mi.UUIDType):
            return uuid.UUID(int=r.getrandbits(128), version=4)
        if isinstance(t, mi.DecimalType):
            return decimal.Decimal(r.randrange(-100000, 100000)) / 100
        if isinstance(t, mi.LiteralType):
            return r.choice(list(t.values))
        if isinstance(t, mi.EnumType):
            return r.choice(list(t.cls))
        if isinstance(t, mi.UnionType):
            options = [o for o in t.types if not isinstance(o, mi.NoneType)] or list(t.types)
            if depth >= _MAX_DEPTH and any(isinstance(o, mi.NoneType) for o in t.types):
                return None
            return self.value(r.choice(options), depth + 1)
        if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            n = 0 if depth >= _MAX_DEPTH else self._len(self.spec.list_len, t.min_length, t.max_length)
            items = [self.value(t.item_type, depth + 1) for _ in range(n)]
            if isinstance(t, (mi.SetType, mi.FrozenSetType)):
                return items  # msgspec.convert builds the set (and may dedupe)
            return items
        if isinstance(t, mi.TupleType):
            return [self.value(x, depth + 1) for x in t.item_types]
        if isinstance(t, (mi.DictType, mi.FrozenDictType)):
            n = 0 if depth >= _MAX_DEPTH else self._len(self.spec.list_len, t.min_length, t.max_length)
            return {self.value(t.key_type, depth + 1): self.value(t.value_type, depth + 1) for _ in range(n)}
        if isinstance(t, (mi.StructType, mi.DataclassType, mi.TypedDictType, mi.NamedTupleType)):
            out: dict[str, Any] = {}
            for f in t.fields:
                if not f.required and depth >= _MAX_DEPTH:
                    continue
                out[f.encode_name] = self.value(f.type, depth + 1)
            if isinstance(t, mi.StructType) and t.tag_field is not None:
                out[t.tag_field] = t.tag
            return out
        raise ConfigurationError(f"cannot generate a value of type {t!r}")

    def _int(self, t: mi.IntType) -> int:
        lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 0)
        hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else max(lo, 0) + 1_000_000)
        if hi < lo:
            raise ConfigurationError(f"integer bounds admit no value: {t!r}")
        v = self.rng.randint(lo, hi)
        if t.multiple_of:
            v -= v % t.multiple_of
            if v < lo:
                v += t.multiple_of
        return v


def generate(tp: Any, rng: random.Random, spec: Payload | None = None) -> Any:
    """One value of type ``tp``, valid by construction (checked with msgspec.convert)."""
    info = mi.type_info(tp)
    raw = _Gen(rng, spec or Payload()).value(info)
    try:
        return msgspec.convert(raw, tp, builtin_types=(bytes, bytearray, dt.datetime, dt.date, dt.time, uuid.UUID))
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"generated a value msgspec rejects for {tp!r}: {exc}") from None


_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()


class PayloadPool:
    """``distinct`` encoded payloads, made once from a seed; ``pick`` draws one."""

    def __init__(self, spec: Payload, payload_type: Any, rng: random.Random, *, where: str) -> None:
        self.spec = spec
        encode: Callable[[Any], bytes] = _json.encode if spec.encoding == "json" else _msgpack.encode
        self.content_type = "application/json" if spec.encoding == "json" else "application/msgpack"
        self.items: list[bytes | None]
        if spec.kind == "fixed":
            self.items = [None if spec.value is None else encode(spec.value)]
        elif spec.kind == "samples":
            if not spec.file:
                raise ConfigurationError(f"{where}: payload kind 'samples' needs a file")
            self.items = _samples(Path(spec.file), encode, where)
        else:
            tp = resolve_type(spec.type_path) if spec.type_path else payload_type
            if tp is None:
                raise ConfigurationError(
                    f"{where}: no payload type to generate from (the handler is not annotated Event[T], or the "
                    "type is handled by a worker): set payload.type_path, or payload kind 'fixed' or 'samples'"
                )
            self.items = [encode(generate(tp, rng, spec)) for _ in range(spec.distinct)]
        self._n = len(self.items)

    def pick(self, rng: random.Random) -> bytes | None:
        return self.items[0] if self._n == 1 else self.items[int(rng.random() * self._n)]


def _samples(path: Path, encode: Callable[[Any], bytes], where: str) -> list[bytes | None]:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read samples {str(path)!r}: {exc.strerror}") from None
    out: list[bytes | None] = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(encode(msgspec.json.decode(line)))
        except msgspec.DecodeError as exc:
            raise ConfigurationError(f"{where}: {path}:{n} is not JSON: {exc}") from None
    if not out:
        raise ConfigurationError(f"{where}: {path} has no samples")
    return out
