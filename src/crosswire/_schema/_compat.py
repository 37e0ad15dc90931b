"""``crosswire schema check OLD NEW``: is a schema change compatible, and which way?

The modes are Confluent Schema Registry's: **backward** — readers with the NEW schema
read data written with the OLD one (upgrade consumers first); **forward** — readers with
the OLD schema read data written with the NEW one (upgrade producers first); **full** —
both; **breaking** — neither. Each change is judged under the decoding rules of
spec/payloads.md (unknown fields ignored, a missing required field is an error, null
only for optional fields, integers range-checked):

=========================================  ========  ========
change                                     backward  forward
=========================================  ========  ========
add an optional or defaulted field         yes       yes
add a required field                       no        yes
remove an optional or defaulted field      yes       yes
remove a required field                    yes       no
required → optional / defaulted            yes       no
optional / defaulted → required            no        yes
optional → defaulted (null no longer ok)   no        yes
defaulted → optional (writers may send null) yes     no
widen an integer range (int32 → int64)     yes       no
narrow an integer range                    no        yes
integer → float                            yes       no
float → integer                            no        yes
add an enum value                          yes       no
remove an enum value                       no        yes
any other change of a field's type         no        no
remove a type                              no        no
add a type; change a default               yes       yes
=========================================  ========  ========

Types are matched by schema id (the name when none is declared); lists, maps and nested
types are compared recursively. Like buf's ``WIRE_JSON`` rules, a renamed field is a
removed field plus an added one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._model import Enum, Field, Model, Struct, TypeExpr

__all__ = ["Change", "CompatReport", "compare"]

_RANGE = {f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)} | {
    f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)
}
_LEVEL = {"full": ("identical", "full"), "backward": ("identical", "full", "backward")}
_LEVEL["forward"] = ("identical", "full", "forward")
_LEVEL["none"] = ("identical", "full", "backward", "forward")


class Change(msgspec.Struct, frozen=True):
    path: str  # e.g. "orders.Order.items[].qty"
    what: str
    backward: bool
    forward: bool

    @property
    def mode(self) -> str:
        return {(True, True): "full", (True, False): "backward", (False, True): "forward"}.get(
            (self.backward, self.forward), "breaking"
        )


class CompatReport(msgspec.Struct):
    changes: list[Change]
    notes: list[str]

    @property
    def verdict(self) -> str:
        """``identical``, ``full``, ``backward``, ``forward`` or ``breaking``."""
        if not self.changes:
            return "identical"
        backward = all(c.backward for c in self.changes)
        forward = all(c.forward for c in self.changes)
        return {(True, True): "full", (True, False): "backward", (False, True): "forward"}.get(
            (backward, forward), "breaking"
        )

    def satisfies(self, require: str) -> bool:
        """Whether the verdict is at least ``require`` (``none``: anything but breaking)."""
        return self.verdict in _LEVEL[require]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "changes": [{**msgspec.to_builtins(c), "mode": c.mode} for c in self.changes],
            "notes": self.notes,
        }

    def render(self) -> str:
        lines = [f"verdict: {self.verdict}"]
        lines += [f"  {c.mode:<9} {c.path}: {c.what}" for c in self.changes]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class _Comparer:
    def __init__(self, old: Model, new: Model) -> None:
        self.old, self.new = old, new
        self.changes: list[Change] = []
        self.seen: set[tuple[str, str]] = set()

    def add(self, path: str, what: str, backward: bool, forward: bool) -> None:
        self.changes.append(Change(path, what, backward, forward))

    def types(self, old: Struct | Enum, new: Struct | Enum, path: str) -> None:
        if (old.name, new.name) in self.seen:
            return
        self.seen.add((old.name, new.name))
        if isinstance(old, Enum) and isinstance(new, Enum):
            added = [v for v in new.values if v not in old.values]
            removed = [v for v in old.values if v not in new.values]
            if added:
                self.add(path, f"enum values added: {', '.join(added)}", True, False)
            if removed:
                self.add(path, f"enum values removed: {', '.join(removed)}", False, True)
        elif isinstance(old, Struct) and isinstance(new, Struct):
            self.structs(old, new, path)
        else:
            self.add(path, f"changed from {_kind(old)} to {_kind(new)}", False, False)

    def structs(self, old: Struct, new: Struct, path: str) -> None:
        old_fields = {f.name: f for f in old.fields}
        new_fields = {f.name: f for f in new.fields}
        for name, f in old_fields.items():
            if name not in new_fields:
                required = f.presence == "required"
                self.add(f"{path}.{name}", f"{f.presence} field removed", True, not required)
        for name, f in new_fields.items():
            if name not in old_fields:
                required = f.presence == "required"
                self.add(f"{path}.{name}", f"{f.presence} field added", not required, True)
            else:
                self.field(old_fields[name], f, f"{path}.{name}")

    def field(self, old: Field, new: Field, path: str) -> None:
        op, np = _presence(old), _presence(new)
        if op != np:
            backward, forward = _PRESENCE[(op, np)]
            self.add(path, f"{op} → {np}", backward, forward)
        elif old.presence == "defaulted" and old.default != new.default:
            self.add(path, f"default {old.default!r} → {new.default!r} (each reader fills its own)", True, True)
        self.expr(old.type, new.type, path)

    def expr(self, old: TypeExpr, new: TypeExpr, path: str) -> None:
        if old.kind == new.kind == "int":
            olo, ohi = _bounds(old)
            nlo, nhi = _bounds(new)
            if (olo, ohi) != (nlo, nhi):
                backward = nlo <= olo and nhi >= ohi
                forward = olo <= nlo and ohi >= nhi
                self.add(path, f"integer range [{olo}, {ohi}] → [{nlo}, {nhi}]", backward, forward)
        elif old.kind == new.kind and old.kind in ("list", "map"):
            self.expr(old.item or TypeExpr("any"), new.item or TypeExpr("any"), f"{path}[]")
        elif old.kind == new.kind == "ref":
            o, n = self.old.types.get(str(old.ref)), self.new.types.get(str(new.ref))
            if o is not None and n is not None:
                self.types(o, n, path)
        elif old.kind != new.kind:
            if (old.kind, new.kind) == ("int", "float"):
                self.add(path, "integer → float", True, False)
            elif (old.kind, new.kind) == ("float", "int"):
                self.add(path, "float → integer", False, True)
            elif new.kind == "any":
                self.add(path, f"{old.describe()} → any", True, False)
            elif old.kind == "any":
                self.add(path, f"any → {new.describe()}", False, True)
            else:
                self.add(path, f"type {old.describe()} → {new.describe()}", False, False)


# (old presence, new presence) -> (backward, forward)
_PRESENCE = {
    ("required", "optional"): (True, False),
    ("required", "defaulted"): (True, False),
    ("required", "nullable"): (True, False),
    ("optional", "required"): (False, True),
    ("defaulted", "required"): (False, True),
    ("nullable", "required"): (False, True),
    ("optional", "defaulted"): (False, True),
    ("defaulted", "optional"): (True, False),
    ("nullable", "optional"): (True, False),
    ("optional", "nullable"): (False, True),
    ("nullable", "defaulted"): (False, False),
    ("defaulted", "nullable"): (False, False),
}


def _presence(f: Field) -> str:
    return "nullable" if f.presence == "required" and f.nullable else f.presence


def _bounds(t: TypeExpr) -> tuple[int, int]:
    lo, hi = _RANGE[str(t.width)]
    return (lo if t.minimum is None else t.minimum, hi if t.maximum is None else t.maximum)


def _kind(t: Struct | Enum) -> str:
    return "a struct" if isinstance(t, Struct) else "an enum"


def compare(old: Model, new: Model) -> CompatReport:
    """Every change from ``old`` to ``new`` with the directions it is compatible in."""
    cmp = _Comparer(old, new)
    notes: list[str] = []
    old_by_id = {t.ref.id: t for t in old.types.values()}
    new_by_id = {t.ref.id: t for t in new.types.values()}
    for sid, o in old_by_id.items():
        n = new_by_id.get(sid)
        if n is None:
            cmp.add(sid, "type removed", False, False)
            continue
        before = len(cmp.changes)
        cmp.types(o, n, sid)
        changed = len(cmp.changes) > before
        if changed and o.ref.version == n.ref.version:
            notes.append(f"{sid} changed but kept version {o.ref.version}")
        elif changed and n.ref.version < o.ref.version:
            notes.append(f"{sid} went from version {o.ref.version} down to {n.ref.version}")
    for sid in new_by_id:
        if sid not in old_by_id:
            cmp.add(sid, "type added", True, True)
    for event_type, old_name in old.messages.items():
        new_name = new.messages.get(event_type)
        was = old.types.get(old_name) if old_name else None
        after = new.types.get(new_name) if new_name else None
        if event_type not in new.messages:
            notes.append(f"event type {event_type} is no longer in the schema")
        elif was is not None and after is not None and was.ref.id != after.ref.id:
            cmp.types(was, after, f"event {event_type}")
    return CompatReport(cmp.changes, notes)
