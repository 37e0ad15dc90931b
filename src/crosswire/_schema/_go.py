"""Go structs for a :class:`~._model.Model`, gofmt-formatted, decoded by the Go SDK's
``crosswire.Decode`` under spec/payloads.md.

required → a plain field; optional → a pointer with ``omitempty`` (nil when absent or
null); defaulted → ``omitempty`` (the zero value when absent; Go has no other default,
so a non-zero default is refused). Enums are string types whose ``UnmarshalText``
refuses values outside the enum.
"""

from __future__ import annotations

import re

from ._model import Enum, Field, Model, SchemaError, Struct, TypeExpr

__all__ = ["generate_go", "go_name"]

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|$|[^A-Za-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")
_INITIALISMS = {
    "api", "cpu", "dns", "eof", "http", "https", "id", "ip", "json", "sku", "sql", "tcp", "tls",
    "ttl", "udp", "ui", "uri", "url", "utf8", "uuid", "xml",
}  # fmt: skip
_INTS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_ZERO: tuple[object, ...] = (0, 0.0, "", False, {}, [])


def go_name(text: str) -> str:
    words = _WORD.findall(text) or ["X"]
    out = "".join(w.upper() if w.lower() in _INITIALISMS else w[:1].upper() + w[1:] for w in words)
    return out if out[0].isalpha() else f"X{out}"


def _type(t: TypeExpr, where: str) -> str:
    if t.kind == "int":
        assert t.width in _INTS
        return t.width
    simple = {"float": "float64", "str": "string", "bool": "bool", "bytes": "[]byte", "time": "time.Time", "any": "any"}
    if t.kind in simple:
        return simple[t.kind]
    if t.kind == "list":
        return f"[]{_type(t.item or TypeExpr('any'), where)}"
    if t.kind == "map":
        return f"map[string]{_type(t.item or TypeExpr('any'), where)}"
    if t.kind == "ref":
        return go_name(str(t.ref))
    raise SchemaError(f"{where}: no Go type for {t.kind}")


def _align(rows: list[list[str]], indent: str = "\t") -> list[str]:
    """gofmt's column alignment: cells padded with spaces to the widest, one space apart."""
    widths = [max(len(r[i]) for r in rows if i < len(r) - 1) for i in range(max(len(r) for r in rows) - 1)]
    return [indent + " ".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + " " + r[-1] for r in rows]


def _field(f: Field, owner: str) -> list[str]:
    where = f"{owner}.{f.name}"
    if any(c in f.name for c in ',"`') or not f.name:
        raise SchemaError(f"{where}: a field name Go tags cannot hold")
    gotype = _type(f.type, where)
    tag = f.name
    if f.presence == "optional" or f.nullable:
        if f.type.kind != "any":
            gotype = f"*{gotype}"
        tag += ",omitempty"
    elif f.presence == "defaulted":
        if f.default not in _ZERO or isinstance(f.default, bool) != (f.type.kind == "bool"):
            raise SchemaError(
                f"{where}: default {f.default!r} is not Go's zero value; make the field optional or required"
            )
        tag += ",omitempty"
    return [go_name(f.name), gotype, f'`msgpack:"{tag}" json:"{tag}"`']


def _consts(name: str, t: Struct) -> list[str]:
    rows = [
        [f"{name}SchemaID", "=", f'"{t.ref.id}"'],
        [f"{name}SchemaVersion", "=", str(t.ref.version)],
        [f"{name}DataSchema", "=", f'"{t.ref.uri}"'],
    ]
    doc = f"// The schema of {name}: id, version, and the dataschema URI its events carry."
    return [doc, "const (", *_align(rows), ")"]


def _struct(s: Struct) -> list[str]:
    name = go_name(s.name)
    lines = [f"// {name} is the payload schema {s.ref.id} version {s.ref.version}."]
    if s.description:
        lines += ["//", *(f"// {line}".rstrip() for line in s.description.splitlines())]
    rows = [_field(f, s.name) for f in s.fields]
    seen: set[str] = set()
    for row in rows:
        base, n = row[0], 2
        while row[0] in seen:
            row[0], n = f"{base}{n}", n + 1
        seen.add(row[0])
    lines += [f"type {name} struct {{", *(_align(rows) if rows else []), "}", "", *_consts(name, s)]
    return lines


def _enum(e: Enum) -> list[str]:
    name = go_name(e.name)
    consts: list[list[str]] = []
    seen: set[str] = set()
    for value in e.values:
        const = f"{name}{go_name(value) if re.search('[A-Za-z0-9]', value) else 'Empty'}"
        base, n = const, 2
        while const in seen:
            const, n = f"{base}{n}", n + 1
        seen.add(const)
        consts.append([const, name, "=", _go_string(value)])
    names = ", ".join(c[0] for c in consts)
    allowed = ", ".join(e.values)
    return [
        f"// {name} is one of {allowed}.",
        f"type {name} string",
        "",
        f"// The values of {name}.",
        "const (",
        *_align(consts),
        ")",
        "",
        f"// UnmarshalText accepts only the values of {name} (anything else is invalid_argument).",
        f"func (v *{name}) UnmarshalText(text []byte) error {{",
        f"\tswitch {name}(text) {{",
        f"\tcase {names}:",
        f"\t\t*v = {name}(text)",
        "\t\treturn nil",
        "\t}",
        f'\treturn fmt.Errorf("%q is not a {name} (one of {_escape(allowed)})", text)',
        "}",
    ]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _go_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def generate_go(model: Model, *, package: str) -> str:
    """One Go file with every type of ``model``.

    :raises SchemaError: a field Go cannot express as the other SDKs read it.
    """
    if not re.match(r"^[a-z][a-z0-9_]*$", package):
        raise SchemaError(f"Go package name {package!r} must be lower case letters, digits or '_'")
    body: list[str] = []
    for t in model.types.values():
        body += ["", *(_struct(t) if isinstance(t, Struct) else _enum(t))]
    text = "\n".join(body)
    imports = [i for i, used in (("fmt", "fmt." in text), ("time", "time.Time" in text)) if used]
    head = ["// Code generated by crosswire codegen. DO NOT EDIT.", "", f"package {package}"]
    if len(imports) == 1:
        head += ["", f'import "{imports[0]}"']
    elif imports:
        head += ["", "import (", *(f'\t"{i}"' for i in imports), ")"]
    return "\n".join(head) + "\n" + text + "\n"
