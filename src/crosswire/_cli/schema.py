"""``crosswire schema export|check``: the app's AsyncAPI document; schema compatibility."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import UserError, load_app

__all__ = ["add_parser", "dump_document", "load_document"]


def add_parser(sub: Any) -> None:
    schema = sub.add_parser(
        "schema",
        help="export the app's AsyncAPI document; check schema compatibility",
        description="Payload schemas (docs/schema.md).",
    )
    verbs = schema.add_subparsers(dest="schema_command", required=True, metavar="VERB")
    export = verbs.add_parser(
        "export",
        help="write the app's AsyncAPI 3.0 document",
        description="Write the AsyncAPI 3.0 document of an App: a channel per event type (its NATS "
        "subject), JSON Schema payloads from the handlers' payload types, operations per binding.",
    )
    export.add_argument("app", metavar="MODULE:APP", help="e.g. examples.orders.app:app")
    export.add_argument("--format", choices=("json", "yaml"), default="json", help="default: %(default)s")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument(
        "--nats",
        metavar="URL",
        action="append",
        help="NATS server URL for the servers section (repeat for several; default nats://localhost:4222)",
    )
    export.add_argument("--subject-prefix", default="cw", help="the transport's subject prefix (default: %(default)s)")
    export.add_argument("--stream", default="CROSSWIRE", help="JetStream stream name (default: %(default)s)")
    export.add_argument("--version", default="1.0.0", help="the document's info.version (default: %(default)s)")
    export.set_defaults(handler=export_command)

    check = verbs.add_parser(
        "check",
        help="classify the change from OLD to NEW: full, backward, forward compatible or breaking",
        description="Compare two schema documents (AsyncAPI or JSON Schema, JSON or YAML) type by type. "
        "backward: readers with NEW read data written with OLD; forward: readers with OLD read data "
        "written with NEW; full: both. Exit 0 when the change satisfies --require, 1 when not.",
    )
    check.add_argument("old", metavar="OLD", help="a schema file, or MODULE:APP")
    check.add_argument("new", metavar="NEW", help="a schema file, or MODULE:APP (e.g. the app as it is now)")
    check.add_argument(
        "--require",
        choices=("backward", "forward", "full", "none"),
        default="none",
        help="fail unless the change is at least this compatible (default: %(default)s, i.e. fail only on breaking)",
    )
    check.add_argument("--json", action="store_true", help="print the verdict and changes as JSON")
    check.set_defaults(handler=check_command)


def dump_document(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    try:
        import yaml
    except ImportError:
        raise UserError(
            "YAML output needs PyYAML: pip install 'crosswire[schema]' (or use --format json; JSON is valid YAML 1.2)"
        ) from None
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))


def load_document(path: str) -> dict[str, Any]:
    """A JSON or YAML document (by suffix; JSON is tried first for other names)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    doc: Any
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UserError(f"{path}: reading YAML needs PyYAML: pip install 'crosswire[schema]'") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected an object at the top level")
    return doc


async def export_command(args: argparse.Namespace) -> int:
    return _export(args)


async def check_command(args: argparse.Namespace) -> int:
    return _check(args)


def _export(args: argparse.Namespace) -> int:
    from ..schema import asyncapi

    app = load_app(args.app)
    doc = asyncapi(
        app,
        servers=args.nats or ("nats://localhost:4222",),
        subject_prefix=args.subject_prefix,
        stream=args.stream,
        version=args.version,
    )
    text = dump_document(doc, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _document(source: str) -> dict[str, Any]:
    """A schema file, or the AsyncAPI document of ``MODULE:APP`` when no such file exists."""
    from ..schema import asyncapi

    if ":" in source and not Path(source).exists():
        return asyncapi(load_app(source))
    return load_document(source)


def _check(args: argparse.Namespace) -> int:
    from ..schema import SchemaError, compare, load_model

    try:
        old = load_model(_document(args.old), source=args.old)
        new = load_model(_document(args.new), source=args.new)
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    report = compare(old, new)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render())
    return 0 if report.satisfies(args.require) else 1
