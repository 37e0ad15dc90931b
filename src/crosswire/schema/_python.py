"""Python msgspec Structs for a :class:`~._model.Model` (the types a schema file
describes, for a Python worker or a producer that does not own the app's types).

required → no default; optional → ``T | None = None``; defaulted → the default. Integer
bounds are kept as ``msgspec.Meta(ge=, le=)``; timestamps need an offset
(``Meta(tz=True)``); each Struct is declared with its schema id and version.
"""

from __future__ import annotations

import base64
import keyword
import re

from ._model import Enum, Field, Model, SchemaError, Struct, TypeExpr, pascal

__all__ = ["generate_python"]

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z0-9]|$|[^A-Za-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+")
_WIDTH = {f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)} | {
    f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)
}


def _ident(text: str) -> str:
    if text.isidentifier() and not keyword.iskeyword(text) and not text.startswith("_"):
        return text
    name = "_".join(w.lower() for w in _WORD.findall(text)) or "field"
    name = f"f_{name}" if name[0].isdigit() else name
    return f"{name}_" if keyword.iskeyword(name) else name


def _type(t: TypeExpr) -> str:
    if t.kind == "int":
        lo, hi = t.minimum, t.maximum
        if lo is None and hi is None and t.width != "int64":
            lo, hi = _WIDTH[str(t.width)]
        if lo is None and hi is None:
            return "int"
        bounds = ", ".join(f"{k}={v}" for k, v in (("ge", lo), ("le", hi)) if v is not None)
        return f"Annotated[int, msgspec.Meta({bounds})]"
    simple = {"float": "float", "str": "str", "bool": "bool", "bytes": "bytes", "any": "Any"}
    if t.kind in simple:
        return simple[t.kind]
    if t.kind == "time":
        return "Annotated[datetime.datetime, msgspec.Meta(tz=True)]"
    if t.kind == "list":
        return f"list[{_type(t.item or TypeExpr('any'))}]"
    if t.kind == "map":
        return f"dict[str, {_type(t.item or TypeExpr('any'))}]"
    return pascal(str(t.ref))


def _default(f: Field, model: Model, where: str) -> str:
    value, kind = f.default, f.type.kind
    if isinstance(value, (dict, list)):
        factory = "dict" if isinstance(value, dict) else "list"
        return f"default_factory={factory}" if not value else f"default_factory=lambda: {value!r}"
    if kind == "bytes" and isinstance(value, str):
        return f"default={base64.b64decode(value)!r}"
    if kind == "ref" and isinstance(enum := model.types.get(str(f.type.ref)), Enum):
        if value not in enum.values:
            raise SchemaError(f"{where}: default {value!r} is not a value of {enum.name}")
        return f"default={pascal(enum.name)}.{_members(enum)[enum.values.index(str(value))]}"
    if kind == "time":
        raise SchemaError(f"{where}: a defaulted timestamp is not supported; make it optional")
    if isinstance(value, (str, int, float, bool)):
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


def _struct(s: Struct, model: Model) -> list[str]:
    lines = [
        "",
        "",
        f"@schema({s.ref.id!r}, version={s.ref.version})",
        f"class {pascal(s.name)}(msgspec.Struct, kw_only=True):",
    ]
    lines.append(f'    """{(s.description or f"The payload schema {s.ref.id} version {s.ref.version}.")}"""')
    if s.description and '"""' in s.description:
        raise SchemaError(f"{s.name}: a description with triple quotes")
    for f in s.fields:
        where = f"{s.name}.{f.name}"
        name = _ident(f.name)
        ptype = _type(f.type)
        spec: list[str] = []
        if f.presence == "optional" or f.nullable:
            ptype = f"{ptype} | None"
            if f.presence == "optional":
                spec.append("default=None")
        elif f.presence == "defaulted":
            spec.append(_default(f, model, where))
        if name != f.name:
            spec.append(f"name={f.name!r}")
        if not spec:
            lines.append(f"    {name}: {ptype}")
        elif spec == ["default=None"]:
            lines.append(f"    {name}: {ptype} = None")
        elif len(spec) == 1 and spec[0].startswith("default=") and "default_factory" not in spec[0]:
            lines.append(f"    {name}: {ptype} = {spec[0].removeprefix('default=')}")
        else:
            lines.append(f"    {name}: {ptype} = msgspec.field({', '.join(spec)})")
    return lines


def _enum(e: Enum) -> list[str]:
    lines = ["", "", f"class {pascal(e.name)}(enum.Enum):"]
    lines += [f"    {m} = {v!r}" for m, v in zip(_members(e), e.values, strict=True)]
    return lines


def generate_python(model: Model) -> str:
    """One Python module with every type of ``model`` (msgspec Structs and enums)."""
    body: list[str] = []
    for t in model.types.values():  # enums first: struct defaults name their members
        if isinstance(t, Enum):
            body += _enum(t)
    for t in model.types.values():
        if isinstance(t, Struct):
            body += _struct(t, model)
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
