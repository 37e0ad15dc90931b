"""Rust serde types for a :class:`~._model.Model`, rustfmt-formatted and clippy-clean,
decoded by the Rust SDK (``crosswire::payload``, ``Event::decode``) under spec/payloads.md.

required → a plain field; optional → ``Option<T>`` (absent or null → ``None``, skipped
when writing); defaulted → ``#[serde(default)]`` (or a default function for a non-zero
default). Bytes use ``crosswire::payload::bytes``, timestamps ``crosswire::payload::Timestamp``;
a field whose name is not its Rust name gets ``#[serde(rename = "...")]``.
"""

from __future__ import annotations

import json
import re

from ._model import Enum, Field, Model, SchemaError, Struct, TypeExpr, pascal

__all__ = ["generate_rust", "rust_field"]

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|$|[^A-Za-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")
_KEYWORDS = set(
    [
        "as",
        "async",
        "await",
        "break",
        "const",
        "continue",
        "crate",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
        "abstract",
        "become",
        "box",
        "do",
        "final",
        "macro",
        "override",
        "priv",
        "try",
        "typeof",
        "unsized",
        "virtual",
        "yield",
        "gen",
    ]
)
_INTS = {"int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64"} | {f"uint{b}": f"u{b}" for b in (8, 16, 32, 64)}
_OPT_BYTES = """
/// `Option<Vec<u8>>` as MessagePack bin / base64 in JSON, or absent / null.
mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Bin(#[serde(with = "crosswire::payload::bytes")] Vec<u8>);

    pub fn serialize<S: Serializer>(
        value: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => crosswire::payload::bytes::serialize(bytes, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Bin>::deserialize(deserializer)?.map(|bin| bin.0))
    }
}
"""


def rust_field(text: str) -> str:
    name = "_".join(w.lower() for w in _WORD.findall(text)) or "field"
    if name[0].isdigit():
        name = f"f_{name}"
    if name in ("self", "crate", "super", "_"):
        return f"{name}_"
    return f"r#{name}" if name in _KEYWORDS else name


def _type(t: TypeExpr, where: str, *, nested: bool = False) -> str:
    if t.kind == "int":
        return _INTS[str(t.width)]
    if t.kind == "bytes":
        if nested:
            raise SchemaError(f"{where}: bytes inside a list or map are not supported in Rust codegen")
        return "Vec<u8>"
    simple = {"float": "f64", "str": "String", "bool": "bool", "time": "crosswire::payload::Timestamp"}
    if t.kind in simple:
        return simple[t.kind]
    if t.kind == "list":
        return f"Vec<{_type(t.item or TypeExpr('any'), where, nested=True)}>"
    if t.kind == "map":
        return f"BTreeMap<String, {_type(t.item or TypeExpr('any'), where, nested=True)}>"
    if t.kind == "ref":
        return pascal(str(t.ref))
    raise SchemaError(f"{where}: a value of any type has no Rust type here; declare its type in the schema")


def _rust_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _default_fn(f: Field, owner: Struct, rtype: str, model: Model, fns: list[str]) -> str | None:
    """``None`` for a zero default (``#[serde(default)]``), else the name of a default function."""
    value, kind, where = f.default, f.type.kind, f"{owner.name}.{f.name}"
    if value in (0, "", False, {}, []) and kind != "ref" and isinstance(value, bool) == (kind == "bool"):
        return None
    if kind == "str" and isinstance(value, str):
        expr = f"{_rust_str(value)}.to_owned()"
    elif kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        expr = str(value)
    elif kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        expr = repr(float(value))
    elif kind == "bool" and isinstance(value, bool):
        expr = "true" if value else "false"
    elif kind == "ref" and isinstance(model.types.get(str(f.type.ref)), Enum) and isinstance(value, str):
        enum = model.types[str(f.type.ref)]
        assert isinstance(enum, Enum)
        if value not in enum.values:
            raise SchemaError(f"{where}: default {value!r} is not a value of {enum.name}")
        expr = f"{rtype}::{_variants(enum)[enum.values.index(value)]}"
    else:
        raise SchemaError(f"{where}: default {value!r} is not supported by Rust codegen")
    name = f"default_{rust_field(owner.name)}_{rust_field(f.name).removeprefix('r#')}"
    fns += ["", f"fn {name}() -> {rtype} {{", f"    {expr}", "}"]
    return name


def _struct(s: Struct, model: Model, fns: list[str]) -> list[str]:
    name = pascal(s.name)
    lines = [f"/// The payload schema `{s.ref.id}` version {s.ref.version}."]
    if s.description:
        lines += ["///", *(f"/// {line}".rstrip() for line in s.description.splitlines())]
    lines += ["#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]", f"pub struct {name} {{"]
    seen: set[str] = set()
    for f in s.fields:
        where = f"{s.name}.{f.name}"
        ident = rust_field(f.name)
        base, n = ident, 2
        while ident in seen:
            ident, n = f"{base}_{n}", n + 1
        seen.add(ident)
        rtype = _type(f.type, where)
        attrs: list[str] = []
        if ident.removeprefix("r#") != f.name:
            attrs.append(f"rename = {_rust_str(f.name)}")
        if f.presence == "optional" or f.nullable:
            attrs += ["default", 'skip_serializing_if = "Option::is_none"']
            if f.type.kind == "bytes":
                attrs.append('with = "opt_bytes"')
            rtype = f"Option<{rtype}>"
        else:
            if f.presence == "defaulted":
                if f.type.kind == "time":
                    raise SchemaError(f"{where}: a defaulted timestamp has no Rust default; make it optional")
                fn = _default_fn(f, s, rtype, model, fns)
                attrs.append(f"default = {_rust_str(fn)}" if fn else "default")
            if f.type.kind == "bytes":
                attrs.append('with = "crosswire::payload::bytes"')
        attr = f"    #[serde({', '.join(attrs)})]"
        if len(attr) > 100:
            attr = "    #[serde(\n" + "".join(f"        {a},\n" for a in attrs) + "    )]"
        if attrs:
            lines.append(attr)
        lines.append(f"    pub {ident}: {rtype},")
    lines += [
        "}",
        "",
        f"impl {name} {{",
        "    /// The schema id.",
        f"    pub const SCHEMA_ID: &str = {_rust_str(s.ref.id)};",
        "    /// The schema version.",
        f"    pub const SCHEMA_VERSION: u32 = {s.ref.version};",
        "    /// The `dataschema` URI of events carrying this payload.",
        f"    pub const DATASCHEMA: &str = {_rust_str(s.ref.uri)};",
        "}",
    ]
    return lines


def _variants(e: Enum) -> list[str]:
    out: list[str] = []
    for value in e.values:
        v = pascal(value) if re.search("[A-Za-z0-9]", value) else "Empty"
        base, n = v, 2
        while v in out:
            v, n = f"{base}{n}", n + 1
        out.append(v)
    return out


def _enum(e: Enum) -> list[str]:
    lines = [
        f"/// One of {', '.join(f'`{v}`' for v in e.values)}.",
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]",
        f"pub enum {pascal(e.name)} {{",
    ]
    for value, variant in zip(e.values, _variants(e), strict=True):
        lines += [f"    #[serde(rename = {_rust_str(value)})]", f"    {variant},"]
    return [*lines, "}"]


def generate_rust(model: Model) -> str:
    """One Rust module with every type of ``model`` (depends on serde and crosswire).

    :raises SchemaError: a field Rust codegen cannot express as the other SDKs read it.
    """
    body: list[str] = []
    fns: list[str] = []
    for t in model.types.values():
        body += ["", *(_struct(t, model, fns) if isinstance(t, Struct) else _enum(t))]
    text = "\n".join(body + fns)
    head = [
        "// Code generated by crosswire codegen. DO NOT EDIT.",
        "// A program rarely uses every type and constant of its schema:",
        "#![allow(dead_code)]",
        "",
    ]
    if "BTreeMap<" in text:
        head.append("use std::collections::BTreeMap;")
        head.append("")
    head.append("use serde::{Deserialize, Serialize};")
    out = "\n".join(head) + "\n" + text + "\n"
    if 'with = "opt_bytes"' in text:
        out += _OPT_BYTES
    return out
