"""``crosswire codegen`` as a command: --check for CI, schema files (JSON Schema, YAML), and
clear refusals of what a language cannot express the way the other SDKs read it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .conftest import HERE, cli

FOREIGN = {
    "$defs": {
        "Shipment": {
            "type": "object",
            "description": "A parcel on its way.",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "weight_grams": {"type": "integer", "minimum": 0, "maximum": 100000},
                "state": {"enum": ["packed", "sent"]},
                "legs": {"type": "array", "items": {"$ref": "#/$defs/Leg"}},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
                "eta": {"type": ["string", "null"], "format": "date-time"},
            },
            "required": ["id", "weight_grams", "state", "legs"],
        },
        "Leg": {
            "type": "object",
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "km": {"type": "number"}},
            "required": ["from", "to"],
        },
    }
}


def test_check_passes_when_fresh_and_fails_when_stale_or_missing(tmp_path: Path) -> None:
    args = ("codegen", "--lang", "go", "--app", "payload_types:app", "-o", str(tmp_path))
    missing = cli(*args, "--check", cwd=HERE)
    assert missing.returncode == 1 and "is missing" in missing.stderr
    assert cli(*args, cwd=HERE).returncode == 0
    fresh = cli(*args, "--check", cwd=HERE)
    assert fresh.returncode == 0, fresh.stderr
    path = tmp_path / "payloads.go"
    path.write_text(path.read_text().replace("uint32", "int64", 1))
    stale = cli(*args, "--check", cwd=HERE)
    assert stale.returncode == 1
    assert f"{path} is stale; regenerate it with crosswire codegen" in stale.stderr


def test_check_needs_an_output_directory() -> None:
    proc = cli("codegen", "--lang", "go", "--app", "payload_types:app", "--check", cwd=HERE)
    assert proc.returncode == 3 and "--check needs -o DIR" in proc.stderr


def test_a_foreign_json_schema_in_yaml(tmp_path: Path) -> None:
    src = tmp_path / "shipment.yaml"
    src.write_text(yaml.safe_dump(FOREIGN))
    go = cli("codegen", "--lang", "go", "--schema", str(src), "--package", "ship")
    assert go.returncode == 0, go.stderr
    assert "\tWeightGrams uint32 " in go.stdout  # [0, 100000] needs 32 bits
    assert "\tState       ShipmentState " in go.stdout  # an inline enum gets a named type
    assert "\tLegs        []Leg " in go.stdout
    assert '\tEta         *time.Time        `msgpack:"eta,omitempty" json:"eta,omitempty"`' in go.stdout
    assert '\tMeta        map[string]string `msgpack:"meta,omitempty" json:"meta,omitempty"`' in go.stdout
    assert "// A parcel on its way." in go.stdout
    rust = cli("codegen", "--lang", "rust", "--schema", str(src))
    assert rust.returncode == 0, rust.stderr
    assert "    pub from: String," in rust.stdout
    assert "    pub km: Option<f64>," in rust.stdout
    py = cli("codegen", "--lang", "python", "--schema", str(src))
    assert py.returncode == 0, py.stderr
    assert "weight_grams: IntTo100000" not in py.stdout
    assert "weight_grams: Int0To100000" in py.stdout
    assert "Int0To100000 = Annotated[int, msgspec.Meta(ge=0, le=100000)]" in py.stdout


def test_a_non_zero_default_is_refused_for_go_with_the_field_named(tmp_path: Path) -> None:
    doc = {
        "title": "Settings",
        "type": "object",
        "properties": {"currency": {"type": "string", "default": "EUR"}},
    }
    src = tmp_path / "settings.json"
    src.write_text(json.dumps(doc))
    go = cli("codegen", "--lang", "go", "--schema", str(src))
    assert go.returncode == 3
    assert "Settings.currency: default 'EUR' is not Go's zero value; make the field optional or required" in go.stderr
    rust = cli("codegen", "--lang", "rust", "--schema", str(src))
    assert rust.returncode == 0, rust.stderr
    assert '#[serde(default = "default_settings_currency")]' in rust.stdout
    assert 'fn default_settings_currency() -> String {\n    "EUR".to_owned()\n}' in rust.stdout
    py = cli("codegen", "--lang", "python", "--schema", str(src))
    assert '    currency: str = "EUR"' in py.stdout


def test_unions_other_than_t_or_null_are_refused(tmp_path: Path) -> None:
    doc = {"title": "Odd", "type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}
    src = tmp_path / "odd.json"
    src.write_text(json.dumps(doc))
    proc = cli("codegen", "--lang", "go", "--schema", str(src))
    assert proc.returncode == 3
    assert "Odd.v: anyOf is supported only as 'T or null'" in proc.stderr


def test_an_unknown_type_name_lists_the_known_ones() -> None:
    proc = cli("codegen", "--lang", "go", "--app", "payload_types:app", "--type", "Nope", cwd=HERE)
    assert proc.returncode == 3
    assert "no type or event type 'Nope' in the schema (types: Address, Customer, Item, Kitchen" in proc.stderr


def test_an_event_type_selects_its_payload_and_what_it_references() -> None:
    proc = cli("codegen", "--lang", "go", "--app", "payload_types:app", "--type", "vectors.order", cwd=HERE)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("type ")]
    assert names == ["Customer", "Item", "Order"]
