"""Payload schemas: the app's contract as AsyncAPI 3.0, generated Go/Rust/Python types,
schema ids and versions on the wire, and compatibility checks (docs/schema.md).

``dataschema`` carries ``urn:crosswire:schema:<id>:<version>``; declare a payload type's
id and version with :func:`schema`.
"""

from __future__ import annotations

from ._schema._asyncapi import asyncapi
from ._schema._codegen import generate, model_of, select
from ._schema._compat import Change, CompatReport, compare
from ._schema._model import Model, SchemaError, load_model
from ._schema._ref import URN_PREFIX, SchemaRef, declared_schema, parse_dataschema, schema, schema_ref
from ._schema._wire import new_event, refusal, with_dataschema

__all__ = [
    "URN_PREFIX",
    "Change",
    "CompatReport",
    "Model",
    "SchemaError",
    "SchemaRef",
    "asyncapi",
    "compare",
    "generate",
    "load_model",
    "model_of",
    "new_event",
    "refusal",
    "select",
    "declared_schema",
    "parse_dataschema",
    "schema",
    "schema_ref",
    "with_dataschema",
]
