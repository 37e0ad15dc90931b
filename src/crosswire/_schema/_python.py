"""Python msgspec Structs for a :class:`~._model.Model` (the types a schema file
describes, for a Python worker or a producer that does not own the app's types).

required → no default; optional → ``T | None = None``; defaulted → the default. Integer
bounds are kept as ``msgspec.Meta(ge=, le=)``; timestamps need an offset
(``Meta(tz=True)``); each Struct is declared with its schema id and version.
"""

from __future__ import annotations

import base64
import json
import keyword
import re

from ._model import Enum, Field, Model, SchemaError, Struct, TypeExpr, pascal

__all__ = ["generate_python"]

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|$|[^A-Za-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")
_WIDTH = {f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)} | {
    f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)
}


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _bytes_literal(value: bytes) -> str:
    return 'b"' + "".join(chr(c) if 32 <= c < 127 and chr(c) not in '"\\' else f"\\x{c:02x}" for c in value) + '"'


def _ident(text: str) -> str:
    name = "_".join(w.lower() for w in _WORD.findall(text)) or "field"
    name = f"f_{name}" if name[0].isdigit() else name
    return f"{name}_" if keyword.iskeyword(name) else name


_INT64_MAX = 2**63 - 1


def _int_bounds(t: TypeExpr) -> tuple[int | None, int | None]:
    lo, hi = t.minimum, t.maximum
    if lo is None and hi is None and t.width != "int64":
        lo, hi = _WIDTH[str(t.width)]
    if t.width == "uint64" and hi is None:
        hi = 2**64 - 1
    return lo, hi


def _type(t: TypeExpr, aliases: dict[str, str]) -> str:
    """The annotation of ``t``; bounded integers and timestamps become aliases (added to ``aliases``)."""
    if t.kind == "int":
        lo, hi = _int_bounds(t)
        if hi is not None and hi > _INT64_MAX:
            hi = None  # msgspec bounds stop at int64: checked in __post_init__
        if lo is None and hi is None:
            return "int"
        bounds = ", ".join(f"{k}={v}" for k, v in (("ge", lo), ("le", hi)) if v is not None)
        width = next((w for w, r in _WIDTH.items() if r == (lo, hi)), None)
        if width is None and t.width == "uint64" and (lo, hi) == (0, None):
            width = "uint64"
        alias = (
            width.replace("uint", "UInt").replace("int", "Int")
            if width
            else "Int" + "To".join(("M" if v < 0 else "") + str(abs(v)) for v in (lo, hi) if v is not None)
        )
        aliases[alias] = f"Annotated[int, msgspec.Meta({bounds})]"
        return alias
    simple = {"float": "float", "str": "str", "bool": "bool", "bytes": "bytes", "any": "Any"}
    if t.kind in simple:
        return simple[t.kind]
    if t.kind == "time":
        aliases["Timestamp"] = "Annotated[datetime.datetime, msgspec.Meta(tz=True)]"
        return "Timestamp"
    if t.kind == "list":
        return f"list[{_type(t.item or TypeExpr('any'), aliases)}]"
    if t.kind == "map":
        return f"dict[str, {_type(t.item or TypeExpr('any'), aliases)}]"
    return pascal(str(t.ref))


def _default(f: Field, model: Model, where: str) -> str:
    value, kind = f.default, f.type.kind
    if isinstance(value, (dict, list)):
        factory = "dict" if isinstance(value, dict) else "list"
        return f"default_factory={factory}" if not value else f"default_factory=lambda: {value!r}"
    if kind == "bytes" and isinstance(value, str):
        return f"default={_bytes_literal(base64.b64decode(value))}"
    if kind == "ref" and isinstance(enum := model.types.get(str(f.type.ref)), Enum):
        if value not in enum.values:
            raise SchemaError(f"{where}: default {value!r} is not a value of {enum.name}")
        return f"default={pascal(enum.name)}.{_members(enum)[enum.values.index(str(value))]}"
    if kind == "time":
        raise SchemaError(f"{where}: a defaulted timestamp is not supported; make it optional")
    if isinstance(value, str):
        return f"default={_q(value)}"
    if isinstance(value, (int, float, bool)):
        return f"default={value!r}"
    raise SchemaError(f"{where}: default {value!r} is not supported")


def _members(e: Enum) -> list[str]:
    out: list[str] = []
    for value in e.values:
        m = "_".join(w.upper() for w in _WORD.findall(value)) or "EMPTY"
        m = f"V_{m}" if m[0].isdigit() else m
        base, n = m, 2
        while m in out:
            m, n = f"{base}_{n}", n + 1
        out.append(m)
    return out


def _struct(s: Struct, model: Model, aliases: dict[str, str]) -> list[str]:
    if s.description and ('"""' in s.description or "\\" in s.description):
        raise SchemaError(f"{s.name}: a description with triple quotes or backslashes")
    doc = " ".join((s.description or f"The payload schema {s.ref.id} version {s.ref.version}.").split())
    lines = ["", "", f"@schema({_q(s.ref.id)}, version={s.ref.version})"]
    lines += [f"class {pascal(s.name)}(msgspec.Struct, kw_only=True):", f'    """{doc}"""', ""]
    checks: list[str] = []
    for f in s.fields:
        where = f"{s.name}.{f.name}"
        name = _ident(f.name)
        hi = _int_bounds(f.type)[1] if f.type.kind == "int" else None
        if hi is not None and hi > _INT64_MAX:
            guard = f"self.{name} is not None and " if f.presence == "optional" or f.nullable else ""
            checks += [
                f"        if {guard}self.{name} > {hi}:",
                f'            raise ValueError("{f.name}: {hi} is the largest value")',
            ]
        ptype = _type(f.type, aliases)
        spec: list[str] = []
        if f.presence == "optional" or f.nullable:
            ptype = f"{ptype} | None"
            if f.presence == "optional":
                spec.append("default=None")
        elif f.presence == "defaulted":
            spec.append(_default(f, model, where))
        if name != f.name:
            spec.append(f"name={_q(f.name)}")
        if not spec:
            lines.append(f"    {name}: {ptype}")
        elif spec == ["default=None"]:
            lines.append(f"    {name}: {ptype} = None")
        elif len(spec) == 1 and spec[0].startswith("default=") and "default_factory" not in spec[0]:
            lines.append(f"    {name}: {ptype} = {spec[0].removeprefix('default=')}")
        else:
            lines.append(f"    {name}: {ptype} = msgspec.field({', '.join(spec)})")
    if checks:
        lines += ["", "    def __post_init__(self) -> None:", *checks]
    return lines


def _enum(e: Enum) -> list[str]:
    lines = ["", "", f"class {pascal(e.name)}(enum.Enum):"]
    lines += [f"    {m} = {_q(v)}" for m, v in zip(_members(e), e.values, strict=True)]
    return lines


def generate_python(model: Model) -> str:
    """One Python module with every type of ``model`` (msgspec Structs and enums)."""
    aliases: dict[str, str] = {}
    body: list[str] = []
    for t in model.types.values():  # enums first: struct defaults name their members
        if isinstance(t, Enum):
            body += _enum(t)
    for t in model.types.values():
        if isinstance(t, Struct):
            body += _struct(t, model, aliases)
    if aliases:
        body = ["", *(f"{name} = {expr}" for name, expr in sorted(aliases.items())), *body]
    text = "\n".join(body)
    imports = ["from __future__ import annotations", ""]
    imports += [f"import {m}" for m, used in (("datetime", "datetime." in text), ("enum", "enum.Enum" in text)) if used]
    typing_names = [n for n in ("Annotated", "Any") if re.search(rf"\b{n}\b", text)]
    if typing_names:
        imports.append(f"from typing import {', '.join(typing_names)}")
    imports += ["", "import msgspec", "", "from crosswire.schema import schema"]
    head = [
        "# Code generated by crosswire codegen. DO NOT EDIT.",
        '"""Payload types generated from a crosswire schema."""',
        "",
    ]
    return "\n".join(head + imports) + "\n" + text + "\n"
