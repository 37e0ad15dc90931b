"""The order demo's generated contract is current: the AsyncAPI document in
examples/orders/schema/, and the generated payload types its Go and Rust workers build
with (examples/orders/go-pricing/payloads.go, examples/orders/rust-fraud/src/payloads.rs),
which replace the structs they used to write by hand. Regenerate with ``make codegen``;
the workers' vet/clippy and tests run in ``make lint`` / ``make test``."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import ROOT, cli

ORDERS = ROOT / "examples" / "orders"
APP = "examples.orders.app:app"
GENERATED = {
    "go": (ORDERS / "go-pricing", ["--package", "main"], "payloads.go"),
    "rust": (ORDERS / "rust-fraud" / "src", [], "payloads.rs"),
}


def test_the_asyncapi_document_is_current() -> None:
    proc = cli("schema", "export", APP)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((ORDERS / "schema" / "asyncapi.json").read_text()), (
        "examples/orders/schema/asyncapi.json is stale: run make codegen"
    )


@pytest.mark.parametrize("lang", sorted(GENERATED))
def test_the_workers_generated_types_are_current(lang: str) -> None:
    out, extra, name = GENERATED[lang]
    assert (out / name).is_file(), f"{out / name} is missing: run make codegen"
    proc = cli("codegen", "--lang", lang, "--app", APP, "-o", str(out), *extra, "--check")
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr} (run make codegen)"


def test_the_go_worker_uses_the_generated_structs() -> None:
    main = (ORDERS / "go-pricing" / "main.go").read_text()
    assert not re.search(r"^type (Order|Priced) struct", main, re.M), "go-pricing writes its payload types by hand"
    assert "crosswire.Accepts(OrderDataSchema)" in main


def test_the_rust_worker_uses_the_generated_struct() -> None:
    main = (ORDERS / "rust-fraud" / "src" / "main.rs").read_text()
    assert not re.search(r"^\s*(pub )?struct Order\b", main, re.M), "rust-fraud writes its payload type by hand"
    assert "mod payloads;" in main and "use payloads::Order;" in main
    assert '.accepts("order.validated", &[Order::DATASCHEMA])' in main
