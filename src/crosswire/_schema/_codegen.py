"""Generated payload types: which types, which language, which file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._app import App
from ._asyncapi import asyncapi
from ._go import generate_go
from ._model import Model, SchemaError, Struct, TypeExpr, load_model
from ._python import generate_python
from ._rust import generate_rust

__all__ = ["LANGUAGES", "generate", "model_of", "select"]

#: language -> the generated file's name
LANGUAGES = {"go": "payloads.go", "rust": "payloads.rs", "python": "payloads.py"}


def model_of(app: App) -> Model:
    """The payload types of ``app`` (through its AsyncAPI document's JSON Schemas)."""
    return load_model(asyncapi(app), source=f"app {app.name}")


def select(model: Model, names: Iterable[str]) -> Model:
    """``model`` reduced to the named types and every type they reference.

    :raises SchemaError: a name is neither a type nor an event type of the model.
    """
    wanted: list[str] = []
    for name in names:
        if name in model.types:
            wanted.append(name)
        elif model.messages.get(name):
            wanted.append(str(model.messages[name]))
        else:
            known = ", ".join(sorted(model.types)) or "none"
            raise SchemaError(f"no type or event type {name!r} in the schema (types: {known})")
    keep: set[str] = set()

    def visit(name: str) -> None:
        if name in keep:
            return
        keep.add(name)
        t = model.types[name]
        if isinstance(t, Struct):
            for f in t.fields:
                expr: TypeExpr | None = f.type
                while expr is not None:
                    if expr.kind == "ref" and expr.ref:
                        visit(expr.ref)
                    expr = expr.item

    for name in wanted:
        visit(name)
    return Model(
        types={k: v for k, v in model.types.items() if k in keep},
        messages={k: v for k, v in model.messages.items() if v in keep},
        source=model.source,
    )


def generate(model: Model, lang: str, *, package: str = "payloads") -> str:
    """The source text of ``model``'s types in ``lang`` (``go``, ``rust``, ``python``).

    :raises SchemaError: a type the language's generator cannot express faithfully.
    """
    generators: dict[str, Any] = {
        "go": lambda m: generate_go(m, package=package),
        "rust": generate_rust,
        "python": generate_python,
    }
    if lang not in generators:
        raise SchemaError(f"unknown language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    if not model.types:
        raise SchemaError("the schema has no payload types to generate")
    return str(generators[lang](model))
