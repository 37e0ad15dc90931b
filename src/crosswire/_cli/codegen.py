"""``crosswire codegen``: payload types for Go, Rust or Python from the app or a schema file."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from .common import UserError, load_app

__all__ = ["add_parser", "codegen_command"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "codegen",
        help="generate payload types (Go, Rust, Python) from the app or a schema file",
        description="Generate payload types: Go structs (msgpack and json tags), Rust serde structs, or "
        "Python msgspec Structs, with each type's schema id and version. --check exits 1 when the files "
        "on disk differ from what would be generated (for CI).",
    )
    p.add_argument("--lang", required=True, choices=("go", "rust", "python"))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", metavar="MODULE:APP", help="the app whose payload types to generate")
    source.add_argument("--schema", metavar="FILE", help="an AsyncAPI or JSON Schema document (JSON or YAML)")
    p.add_argument("-o", "--output", metavar="DIR", help="write the file into this directory (default: stdout)")
    p.add_argument("--file", metavar="NAME", help="the file name (default: payloads.go, payloads.rs, payloads.py)")
    p.add_argument("--package", metavar="NAME", help="Go package name (default: the output directory's name)")
    p.add_argument(
        "--type",
        dest="types",
        metavar="NAME",
        action="append",
        help="generate only this type or the payload of this event type, and what it references (repeatable)",
    )
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if the file on disk is stale")
    p.set_defaults(handler=codegen_command)


def _package(args: argparse.Namespace) -> str:
    if args.package:
        return str(args.package)
    if args.output:
        name = re.sub(r"[^a-z0-9_]", "", Path(args.output).resolve().name.lower().replace("-", "_"))
        if name and name[0].isalpha():
            return name
    return "payloads"


async def codegen_command(args: argparse.Namespace) -> int:
    return _codegen(args)


def _codegen(args: argparse.Namespace) -> int:
    from .._schema._codegen import LANGUAGES
    from ..schema import SchemaError, generate, load_model, model_of, select
    from .schema import load_document

    if args.check and not args.output:
        raise UserError("--check needs -o DIR (the directory holding the generated file)")
    try:
        model = model_of(load_app(args.app)) if args.app else load_model(load_document(args.schema), source=args.schema)
        if args.types:
            model = select(model, args.types)
        text = generate(model, args.lang, package=_package(args))
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output) / (args.file or LANGUAGES[args.lang])
    if args.check:
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            what = "missing" if current is None else "stale"
            print(f"crosswire: {path} is {what}; regenerate it with crosswire codegen", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(model.types)} types)", file=sys.stderr)
    return 0
