"""Schema ids and versions: what a payload type declares and what ``dataschema`` carries.

A payload type's schema has an **id** (dotted name, e.g. ``orders.Order``) and a
**version** (an integer ≥ 1). On the wire an event names them in its CloudEvents
``dataschema`` attribute as the URN ``urn:crosswire:schema:<id>:<version>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

__all__ = ["SCHEMA_ATTR", "URN_PREFIX", "SchemaRef", "declared_schema", "parse_dataschema", "schema", "schema_ref"]

T = TypeVar("T")

URN_PREFIX = "urn:crosswire:schema:"
SCHEMA_ATTR = "__crosswire_schema__"
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")


class SchemaRef(msgspec.Struct, frozen=True):
    """A schema id and version; :attr:`uri` is the ``dataschema`` value."""

    id: str
    version: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id) or len(self.id) > 200:
            raise ValueError(
                f"schema id {self.id!r} must be dotted names of letters, digits, '_' or '-', "
                "starting with a letter (at most 200 characters)"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"schema version must be an integer >= 1, got {self.version!r}")

    @property
    def uri(self) -> str:
        return f"{URN_PREFIX}{self.id}:{self.version}"

    def __str__(self) -> str:
        return f"{self.id} v{self.version}"


def parse_dataschema(uri: str) -> SchemaRef:
    """The id and version named by a ``dataschema`` URN.

    :raises ValueError: ``uri`` is not ``urn:crosswire:schema:<id>:<version>``.
    """
    if not isinstance(uri, str) or not uri.startswith(URN_PREFIX):
        raise ValueError(f"dataschema {uri!r} is not of the form {URN_PREFIX}<id>:<version>")
    schema_id, sep, version = uri[len(URN_PREFIX) :].rpartition(":")
    if not sep or not version.isdigit():
        raise ValueError(f"dataschema {uri!r} is not of the form {URN_PREFIX}<id>:<version>")
    return SchemaRef(schema_id, int(version))


def schema(id: str | None = None, *, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Declare a payload type's schema id (default: the class name) and version::

    @crosswire.schema.schema("orders.Order", version=2)
    class Order(msgspec.Struct): ...
    """

    def apply(cls: type[T]) -> type[T]:
        setattr(cls, SCHEMA_ATTR, SchemaRef(id or cls.__name__, version))
        _declared.clear()  # subclasses inherit the declaration: forget every cached answer
        return cls

    return apply


_declared: dict[Any, SchemaRef | None] = {}  # type -> its declaration (bounded): a miss costs a getattr failure


def declared_schema(tp: Any) -> SchemaRef | None:
    """The schema a type declared with :func:`schema`, or ``None``."""
    try:
        return _declared[tp]
    except KeyError:
        pass
    except TypeError:  # unhashable
        ref = getattr(tp, SCHEMA_ATTR, None)
        return ref if isinstance(ref, SchemaRef) else None
    ref = getattr(tp, SCHEMA_ATTR, None)
    declared = ref if isinstance(ref, SchemaRef) else None
    if len(_declared) >= 4096:
        _declared.clear()
    _declared[tp] = declared
    return declared


def schema_ref(tp: Any) -> SchemaRef:
    """The declared schema of ``tp``, else its class name at version 1."""
    return declared_schema(tp) or SchemaRef(getattr(tp, "__name__", str(tp)), 1)
