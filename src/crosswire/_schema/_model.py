"""Payload types as a small model read from JSON Schema: what codegen writes and what
``schema check`` compares. The sources are an AsyncAPI document (``components.schemas``,
messages by event type), a JSON Schema with ``$defs``/``definitions``, or one object
schema with a ``title``; the app's own types come here through their JSON Schema.

Presence follows spec/payloads.md: *required* (in ``required``), *optional* (may be
absent or null), *defaulted* (may be absent, then the default; null refused).
Integers get a width from their bounds: the smallest of int8…int64/uint8…uint64 that
holds ``[minimum, maximum]`` (unbounded: int64; ``minimum >= 0`` alone: uint64).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ._ref import SchemaRef

__all__ = ["Enum", "Field", "Model", "SchemaError", "Struct", "TypeExpr", "load_model", "pascal"]

Kind = Literal["int", "float", "str", "bool", "bytes", "time", "list", "map", "ref", "any"]
Presence = Literal["required", "optional", "defaulted"]
_REF = re.compile(r"^#/(?:components/schemas|\$defs|definitions)/(.+)$")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|$|[^A-Za-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")


class SchemaError(ValueError):
    """A schema codegen or check cannot use; the message names where."""


@dataclass(frozen=True)
class TypeExpr:
    kind: Kind
    width: str | None = None  # int: int8 … uint64
    minimum: int | None = None  # int: the schema's own bounds (Python keeps them exactly)
    maximum: int | None = None
    item: TypeExpr | None = None  # list item, map value
    ref: str | None = None  # a Struct or Enum name

    def describe(self) -> str:
        if self.kind == "int":
            return str(self.width)
        if self.kind == "list":
            return f"[{self.item.describe() if self.item else 'any'}]"
        if self.kind == "map":
            return f"map str→{self.item.describe() if self.item else 'any'}"
        if self.kind == "ref":
            return str(self.ref)
        return {"float": "float64", "time": "timestamp"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class Field:
    name: str  # the wire name
    type: TypeExpr
    presence: Presence
    nullable: bool = False  # null accepted (always for optional; also a required field may be nullable)
    default: Any = None  # the JSON default of a defaulted field
    description: str | None = None


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[Field, ...]
    ref: SchemaRef
    description: str | None = None


@dataclass(frozen=True)
class Enum:
    name: str
    values: tuple[str, ...]
    ref: SchemaRef
    description: str | None = None


@dataclass
class Model:
    types: dict[str, Struct | Enum] = field(default_factory=dict)
    messages: dict[str, str | None] = field(default_factory=dict)  # event type -> payload type name
    source: str = ""


def pascal(text: str) -> str:
    words = _WORD.findall(text)
    out = "".join(w[:1].upper() + w[1:] for w in words)
    return out if out and not out[0].isdigit() else f"T{out}"


def _int_width(lo: int | None, hi: int | None, fmt: str | None, where: str) -> str:
    if lo is None and hi is None:
        if fmt in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
            return fmt
        return "uint64" if fmt == "uint" else "int64"
    if hi is None:
        if lo is not None and lo >= 0:
            return "uint64"
        hi = 2**63 - 1
    signed = lo is None or lo < 0
    for bits in (8, 16, 32, 64):
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        if (lo is None or lo >= low) and hi <= high:
            if lo is None and bits < 64:
                continue
            return f"{'int' if signed else 'uint'}{bits}"
    raise SchemaError(f"{where}: integer range [{lo}, {hi}] does not fit 64 bits")


class _Reader:
    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.model = Model()
        self.names = {name: pascal(name) for name in schemas}

    def named(self, name: str) -> str:
        if name not in self.schemas:
            raise SchemaError(f"$ref to unknown schema {name!r}")
        tname = self.names[name]
        if tname not in self.model.types:
            self.define(tname, self.schemas[name], name)
        return tname

    def define(self, tname: str, node: dict[str, Any], where: str) -> None:
        ref = SchemaRef(str(node.get("x-crosswire-schema-id") or tname), int(node.get("x-crosswire-schema-version", 1)))
        desc = node.get("description")
        if "enum" in node or "const" in node:
            values = node["enum"] if "enum" in node else [node["const"]]
            if not values or not all(isinstance(v, str) for v in values):
                raise SchemaError(f"{where}: only string enums are supported, got {values!r}")
            self.model.types[tname] = Enum(tname, tuple(values), ref, desc)
            return
        if node.get("type") not in ("object", None) or "properties" not in node:
            raise SchemaError(f"{where}: a named type must be an object with properties or a string enum")
        self.model.types[tname] = Struct(tname, (), ref, desc)  # placeholder: recursion
        required = set(node.get("required", []))
        fields = []
        for fname, fnode in node["properties"].items():
            texpr, nullable = self.expr(fnode, f"{where}.{fname}", owner=tname, fname=fname)
            if fname in required:
                presence: Presence = "required"
            elif nullable or "default" not in fnode or fnode.get("default") is None:
                presence, nullable = "optional", True
            else:
                presence = "defaulted"
            default = fnode.get("default") if presence == "defaulted" else None
            fields.append(Field(fname, texpr, presence, nullable, default, fnode.get("description")))
        self.model.types[tname] = Struct(tname, tuple(fields), ref, desc)

    def expr(self, node: Any, where: str, *, owner: str, fname: str) -> tuple[TypeExpr, bool]:
        if not isinstance(node, dict):
            raise SchemaError(f"{where}: expected a schema object")
        if "$ref" in node:
            m = _REF.match(str(node["$ref"]))
            if not m:
                raise SchemaError(f"{where}: unsupported $ref {node['$ref']!r}")
            target = self.schemas.get(m.group(1))
            if isinstance(target, dict) and ("properties" in target or "enum" in target or "const" in target):
                return TypeExpr("ref", ref=self.named(m.group(1))), False
            return self.expr(target, where, owner=owner, fname=fname)
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [o for o in node[key] if o != {"type": "null"}]
                if len(options) != 1:
                    raise SchemaError(f"{where}: {key} is supported only as 'T or null'")
                texpr, _ = self.expr(options[0], where, owner=owner, fname=fname)
                return texpr, len(options) != len(node[key])
        types = node.get("type")
        nullable = False
        if isinstance(types, list):
            nullable = "null" in types
            rest = [t for t in types if t != "null"]
            if len(rest) != 1:
                raise SchemaError(f"{where}: type {types!r} is supported only as 'T or null'")
            types = rest[0]
        if "enum" in node or "const" in node:
            values = [v for v in (node["enum"] if "enum" in node else [node["const"]]) if v is not None]
            nullable = nullable or None in node.get("enum", [])
            tname = pascal(f"{owner}_{fname}")
            self.define(tname, {**node, "enum": values}, where)
            return TypeExpr("ref", ref=tname), nullable
        if types == "integer":
            lo, hi = node.get("minimum"), node.get("maximum")
            if "exclusiveMinimum" in node:
                lo = int(node["exclusiveMinimum"]) + 1
            if "exclusiveMaximum" in node:
                hi = int(node["exclusiveMaximum"]) - 1
            return TypeExpr("int", _int_width(lo, hi, node.get("format"), where), lo, hi), nullable
        if types == "number":
            return TypeExpr("float"), nullable
        if types == "boolean":
            return TypeExpr("bool"), nullable
        if types == "string":
            if node.get("format") == "date-time":
                return TypeExpr("time"), nullable
            if node.get("contentEncoding") == "base64" or node.get("format") == "byte":
                return TypeExpr("bytes"), nullable
            return TypeExpr("str"), nullable
        if types == "array":
            item = node.get("items")
            inner = self.expr(item, f"{where}[]", owner=owner, fname=fname)[0] if item else TypeExpr("any")
            return TypeExpr("list", item=inner), nullable
        if types == "object" or "properties" in node or "additionalProperties" in node:
            if "properties" in node:
                tname = pascal(f"{owner}_{fname}")
                self.define(tname, node, where)
                return TypeExpr("ref", ref=tname), nullable
            extra = node.get("additionalProperties")
            value = self.expr(extra, f"{where}{{}}", owner=owner, fname=fname)[0] if isinstance(extra, dict) else None
            return TypeExpr("map", item=value or TypeExpr("any")), nullable
        if types is None:
            return TypeExpr("any"), True
        raise SchemaError(f"{where}: unsupported type {types!r}")


def load_model(doc: dict[str, Any], *, source: str = "") -> Model:
    """The payload types (and, for AsyncAPI, the event types' payloads) of ``doc``.

    :raises SchemaError: a construct codegen does not support (named where).
    """
    messages: dict[str, str | None] = {}
    if "asyncapi" in doc:
        components = doc.get("components") or {}
        schemas = dict(components.get("schemas") or {})
        for message in (components.get("messages") or {}).values():
            payload = message.get("payload") if isinstance(message, dict) else None
            m = _REF.match(str(payload.get("$ref", ""))) if isinstance(payload, dict) else None
            if isinstance(message, dict) and message.get("name"):
                messages[str(message["name"])] = m.group(1) if m else None
    else:
        schemas = dict(doc.get("$defs") or doc.get("definitions") or {})
        if "properties" in doc or "enum" in doc:
            schemas.setdefault(str(doc.get("title") or "Payload"), doc)
    schemas = {k: v for k, v in schemas.items() if isinstance(v, dict) and not v.get("x-crosswire-headers")}
    reader = _Reader(schemas)
    for name in sorted(schemas):
        node = schemas[name]
        if "properties" in node or "enum" in node or "const" in node:
            reader.named(name)
    model = reader.model
    model.types = dict(sorted(model.types.items()))
    model.messages = {t: (reader.names.get(n) if n else None) for t, n in sorted(messages.items())}
    model.source = source
    return model
