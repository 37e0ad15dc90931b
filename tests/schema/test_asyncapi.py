"""``crosswire schema export``: the AsyncAPI 3.0 document, checked by the official parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

import crosswire
from crosswire.schema import asyncapi, schema

from .conftest import cli


def _errors(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in result["diagnostics"] if d["severity"] == 0]


def test_orders_document_validates(tmp_path: Path, asyncapi_validate: Any) -> None:
    out = tmp_path / "orders.json"
    proc = cli("schema", "export", "examples.orders.app:app", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    (result,) = asyncapi_validate(out)
    assert result["valid"], _errors(result)
    assert _errors(result) == []
    # no warnings either: the only remark is that AsyncAPI 3.1 exists (this is a 3.0 document)
    assert [d["code"] for d in result["diagnostics"] if d["severity"] <= 2] == ["asyncapi-latest-version"]
    assert (result["channels"], result["messages"], result["operations"]) == (3, 3, 6)

    doc = json.loads(out.read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {
        "cw.order.created",
        "cw.order.validated",
        "cw.order.priced",
    }
    order = doc["components"]["schemas"]["Order"]
    assert order["required"] == ["order_id", "customer", "sku", "qty", "unit_price_cents", "country"]
    assert (order["x-crosswire-schema-id"], order["x-crosswire-schema-version"]) == ("orders.Order", 1)
    message = doc["components"]["messages"]["order_validated"]
    assert message["payload"] == {"$ref": "#/components/schemas/Order"}
    assert message["x-crosswire-dataschema"] == "urn:crosswire:schema:orders.Order:1"
    assert message["headers"]["allOf"][0] == {"$ref": "#/components/schemas/CloudEventsHeaders"}
    headers = doc["components"]["schemas"]["CloudEventsHeaders"]
    assert {"ce-id", "ce-type", "ce-source", "ce-specversion", "ce-dataschema", "ce-traceparent"} <= set(
        headers["properties"]
    )
    ops = {(o["x-crosswire-binding"], o["action"], o["channel"]["$ref"]): o for o in doc["operations"].values()}
    assert set(ops) == {
        ("validate", "receive", "#/channels/order_created"),
        ("validate", "send", "#/channels/order_validated"),
        ("record", "receive", "#/channels/order_priced"),
        ("pricing:order.validated", "receive", "#/channels/order_validated"),
        ("pricing:order.validated", "send", "#/channels/order_priced"),
        ("fraud:order.validated", "receive", "#/channels/order_validated"),
    }
    assert ops[("pricing:order.validated", "receive", "#/channels/order_validated")]["x-crosswire-runtime"] == "go"
    assert ops[("fraud:order.validated", "receive", "#/channels/order_validated")]["x-crosswire-runtime"] == "rust"
    assert doc["info"]["x-crosswire-workers"]["pricing"]["executable"] == "go-pricing"
    assert doc["servers"]["nats"] == {"host": "localhost:4222", "protocol": "nats", "description": "NATS JetStream"}


def test_yaml_form_is_the_same_document_and_validates(tmp_path: Path, asyncapi_validate: Any) -> None:
    out = tmp_path / "orders.yaml"
    proc = cli(
        "schema", "export", "examples.orders.app:app", "--format", "yaml", "-o", str(out), "--nats", "tls://n1:4443"
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = asyncapi_validate(out)
    assert result["valid"] and _errors(result) == []
    doc = yaml.safe_load(out.read_text())
    assert doc["servers"]["nats"]["host"] == "n1:4443"
    as_json = json.loads(cli("schema", "export", "examples.orders.app:app", "--nats", "tls://n1:4443").stdout)
    assert doc == as_json


def test_the_parser_refuses_a_broken_document(tmp_path: Path, asyncapi_validate: Any) -> None:
    """The validation has teeth: an operation without ``action`` and a dangling $ref are errors."""
    doc = json.loads(cli("schema", "export", "examples.orders.app:app").stdout)
    first = next(iter(doc["operations"].values()))
    del first["action"]
    doc["channels"]["order_created"]["messages"]["order_created"]["$ref"] = "#/components/messages/nope"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    (result,) = asyncapi_validate(path)
    assert not result["valid"]
    assert _errors(result)


class Item(msgspec.Struct):
    sku: str
    qty: int


@schema("shop.Basket", version=3)
class Basket(msgspec.Struct):
    items: list[Item]
    note: str | None = None


def _wildcard_app() -> crosswire.App:
    app = crosswire.App("shop")

    @app.handler("basket.*", emits={"basket.checked": Basket})
    async def any_basket(event: crosswire.Event[Basket]) -> None: ...

    @app.handler("basket.created")
    async def created(event: crosswire.Event[Basket]) -> None: ...

    @app.handler("audit.>")
    async def audit(event: crosswire.Event) -> None: ...

    app.worker("py", handles=["basket.created"], runtime="python")
    return app


def test_wildcards_reach_the_concrete_channels_they_match(tmp_path: Path, asyncapi_validate: Any) -> None:
    doc = asyncapi(_wildcard_app())
    path = tmp_path / "shop.json"
    path.write_text(json.dumps(doc))
    (result,) = asyncapi_validate(path)
    assert result["valid"], _errors(result)
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == {"cw.basket.created", "cw.basket.checked", "cw.audit.>"}
    assert channels["cw.audit.>"]["x-crosswire-pattern"] is True
    receive = sorted(
        (o["x-crosswire-binding"], o["channel"]["$ref"]) for o in doc["operations"].values() if o["action"] == "receive"
    )
    assert receive == [
        ("any_basket", "#/channels/basket_checked"),
        ("any_basket", "#/channels/basket_created"),
        ("audit", "#/channels/audit__"),
        ("created", "#/channels/basket_created"),
        ("py:basket.created", "#/channels/basket_created"),
    ]
    basket = doc["components"]["schemas"]["Basket"]
    assert (basket["x-crosswire-schema-id"], basket["x-crosswire-schema-version"]) == ("shop.Basket", 3)
    assert (
        doc["components"]["messages"]["basket_checked"]["x-crosswire-dataschema"]
        == "urn:crosswire:schema:shop.Basket:3"
    )


def test_two_payload_types_for_one_event_type_is_a_configuration_error() -> None:
    app = crosswire.App("shop")

    @app.handler("basket.created")
    async def created(event: crosswire.Event[Basket]) -> None: ...

    @app.handler("basket.created", name="other")
    async def other(event: crosswire.Event[Item]) -> None: ...

    with pytest.raises(crosswire.ConfigurationError, match=r"'basket.created' has two payload types"):
        asyncapi(app)


def test_declared_contract_is_validated() -> None:
    app = crosswire.App("shop")
    with pytest.raises(crosswire.ConfigurationError, match="wildcard"):
        app.handler("a.b", emits=["a.*"])
    with pytest.raises(crosswire.ConfigurationError, match="has no schema"):
        app.handler("a.b", emits={"a.c": object})
    with pytest.raises(crosswire.ConfigurationError, match="list of event types"):
        app.worker("w", handles="a.b")
    with pytest.raises(crosswire.ConfigurationError, match="runtime"):
        app.worker("w", runtime="")


def test_yaml_needs_pyyaml_else_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from crosswire._cli.common import UserError
    from crosswire._cli.schema import dump_document

    real_import = builtins.__import__

    def no_yaml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "yaml":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(UserError, match=r"PyYAML.*crosswire\[schema\]"):
        dump_document({"a": 1}, "yaml")


def test_export_of_a_missing_module_is_one_line() -> None:
    proc = cli("schema", "export", "no_such_module:app")
    assert proc.returncode == 3
    assert proc.stderr.startswith("crosswire: cannot import module 'no_such_module'")
