"""spec/vectors/payloads/ through the node's typed-payload path (spec/payloads.md).

Each vector's ``msgpack`` and ``json`` forms are delivered to an in-process handler
annotated ``Event[Order]`` (or ``Event[Numbers]``), the way an app author declares it:
:func:`crosswire._function.function_handler` decodes ``data`` by ``datacontenttype`` and
the handler reads ``event.payload``. Valid vectors must give ``expected`` field by field;
invalid ones must end the attempt with ``invalid_argument`` before the handler runs.

The schemas are the Python declaration of the ones in spec/payloads.md, the same the
Python conformance worker serves (:mod:`crosswire.testworker`): integer widths as msgspec
bounds, optional fields as ``T | None = None``, defaulted collections as ``= {}`` / ``= b""``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crosswire import Event
from crosswire._errorinfo import ErrorCode
from crosswire._function import function_handler
from crosswire._types import Attempt
from crosswire.testworker import Numbers, Order

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "payloads"


SCHEMAS: dict[str, type[msgspec.Struct]] = {"Order": Order, "Numbers": Numbers}
FORMS = {"msgpack": "application/msgpack", "json": "application/json"}


def _files(sub: str) -> list[Path]:
    return sorted((VECTORS / sub).glob("*.json"))


def _cases(sub: str) -> list[Any]:
    out = []
    for path in _files(sub):
        vector = json.loads(path.read_text())
        assert vector["name"] == path.stem
        forms = [f for f in FORMS if f in vector]
        assert forms, f"{path.name}: no msgpack or json form"
        out += [pytest.param(vector, form, id=f"{path.stem}-{form}") for form in forms]
    return out


def _data(vector: dict[str, Any], form: str) -> bytes:
    return bytes.fromhex(vector["msgpack"]) if form == "msgpack" else vector["json"].encode()


def _handler_for(schema: str) -> tuple[Any, list[Any]]:
    """A typed in-process handler for ``schema`` and the payloads it received."""
    seen: list[Any] = []
    if schema == "Order":

        async def order_handler(event: Event[Order]) -> None:
            seen.append(event.payload)

        return function_handler(order_handler), seen

    async def numbers_handler(event: Event[Numbers]) -> None:
        seen.append(event.payload)

    return function_handler(numbers_handler), seen


def _deliver(schema: str, data: bytes, form: str) -> tuple[Any, list[Any]]:
    handler, seen = _handler_for(schema)
    event = Event.new("payload.vector", data, datacontenttype=FORMS[form])
    outcome = asyncio.run(handler(Attempt(event=event, binding="vectors")))
    return outcome, seen


def _check(path: str, want: Any, got: Any) -> None:
    """Compare one decoded value with its vector JSON, field by field."""
    if isinstance(want, dict) and set(want) == {"$bin"}:
        assert isinstance(got, bytes), f"{path}: {got!r} is not bytes"
        assert got.hex() == want["$bin"], f"{path}: {got!r}"
    elif isinstance(want, dict) and set(want) == {"$time"}:
        assert isinstance(got, dt.datetime) and got.tzinfo is not None, f"{path}: {got!r}"
        assert got == dt.datetime.fromisoformat(want["$time"]), f"{path}: {got!r} != {want['$time']}"
    elif isinstance(got, msgspec.Struct):
        assert isinstance(want, dict), path
        assert set(want) == set(got.__struct_fields__), f"{path}: fields {sorted(want)}"
        for name in got.__struct_fields__:
            _check(f"{path}.{name}", want[name], getattr(got, name))
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{path}: {got!r}"
        for key, value in want.items():
            _check(f"{path}[{key!r}]", value, got[key])
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r}"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            _check(f"{path}[{i}]", w, g)
    elif isinstance(want, float):
        assert isinstance(got, float) and got == want, f"{path}: {got!r} != {want!r}"
    else:
        assert type(got) is type(want) and got == want, f"{path}: {got!r} != {want!r}"


def test_vector_counts() -> None:
    assert len(_files("valid")) >= 20
    assert len(_files("invalid")) >= 40


@pytest.mark.parametrize(("vector", "form"), _cases("valid"))
def test_valid_payload_decodes_field_by_field(vector: dict[str, Any], form: str) -> None:
    outcome, seen = _deliver(vector["schema"], _data(vector, form), form)
    assert outcome.error is None, outcome.error
    (payload,) = seen
    assert isinstance(payload, SCHEMAS[vector["schema"]])
    _check("$", vector["expected"], payload)


@pytest.mark.parametrize(("vector", "form"), _cases("invalid"))
def test_invalid_payload_is_invalid_argument(vector: dict[str, Any], form: str) -> None:
    assert vector["error"] == "invalid_argument"
    outcome, seen = _deliver(vector["schema"], _data(vector, form), form)
    assert seen == [], "the handler ran on an invalid payload"
    assert outcome.error is not None and outcome.error.code == ErrorCode.INVALID_ARGUMENT
    assert outcome.error.retryable is False


def test_the_two_forms_of_a_vector_agree() -> None:
    """Where a vector has both forms they decode to equal values (one logical payload)."""
    for path in _files("valid"):
        vector = json.loads(path.read_text())
        if "msgpack" in vector and "json" in vector:
            tp = SCHEMAS[vector["schema"]]
            assert msgspec.msgpack.decode(_data(vector, "msgpack"), type=tp) == msgspec.json.decode(
                _data(vector, "json"), type=tp
            ), path.stem


def test_json_bytes_are_standard_padded_base64() -> None:
    vector = json.loads((VECTORS / "valid" / "order-blob-all-bytes.json").read_text())
    blob = json.loads(vector["json"])["blob"]
    assert base64.b64decode(blob, validate=True) == bytes(range(256)) and blob.endswith("=")


# -- the same vectors through a real Go worker process ------------------------------------
# The node delivers every vector's forms to crosswire-testworker (sdk/go), whose
# test.payload.order / test.payload.numbers handlers decode them with the Go SDK and emit
# what they read as MessagePack: valid vectors must come back equal to ``expected``,
# invalid ones must be dead-lettered as the Go worker's invalid_argument.

GO_DIR = Path(__file__).resolve().parents[2] / "sdk" / "go"


def _go_testworker(tmp_path: Path) -> list[str]:
    go = shutil.which("go")
    if go is None:
        binary = GO_DIR / "bin" / "crosswire-testworker"
        if not binary.exists():
            pytest.skip("no `go` toolchain on PATH and no built Go conformance worker")
        return [str(binary)]
    binary = tmp_path / "crosswire-testworker"
    build = subprocess.run(
        [go, "build", "-o", str(binary), "./cmd/crosswire-testworker"],
        cwd=GO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return [str(binary)]


async def test_go_worker_decodes_every_vector_like_the_node(tmp_path: Path) -> None:
    await worker_reads_every_vector([*_go_testworker(tmp_path), "--name", "testworker-go"], "testworker-go", "go")


async def worker_reads_every_vector(command: list[str], name: str, runtime: str, message: str | None = None) -> None:
    """Deliver every vector's forms to the conformance worker ``command`` (``--name``
    ``name``): valid ones must come back equal to ``expected``, invalid ones must be
    dead-lettered as ``runtime``'s non-retryable ``invalid_argument`` (its message
    containing ``message``, when given), the handler never having run."""
    import crosswire

    app = crosswire.App(f"payload-vectors-{runtime}")
    app.worker(name, command=command, timeout=10.0)
    got: dict[str, Any] = {}

    @app.handler("test.payload.order.decoded")
    async def order_read(event: Event[Order]) -> None:
        assert event.causationid is not None
        got[event.causationid] = event.payload

    @app.handler("test.payload.numbers.decoded")
    async def numbers_read(event: Event[Numbers]) -> None:
        assert event.causationid is not None
        got[event.causationid] = event.payload

    sent: dict[str, tuple[dict[str, Any], str]] = {}
    events = []
    for sub in ("valid", "invalid"):
        for path in _files(sub):
            vector = json.loads(path.read_text())
            for form in FORMS:
                if form in vector:
                    event = Event.new(
                        f"test.payload.{vector['schema'].lower()}", _data(vector, form), datacontenttype=FORMS[form]
                    )
                    sent[event.id] = (vector, form)
                    events.append(event)
    assert len(sent) >= 60
    async with crosswire.Node(app) as node:
        await node.submit_events(events)
        await asyncio.wait_for(node.wait_idle(), 60)
        letters = {letter.event.id: letter for letter in await node.dead_letters.list() if letter.event is not None}
    for event_id, (vector, form) in sent.items():
        where = f"{vector['name']} ({form})"
        if "expected" in vector:
            assert event_id in got, (
                f"{where}: the {runtime} worker emitted nothing; dead letter: {letters.get(event_id)}"
            )
            _check(where, vector["expected"], got[event_id])
        else:
            assert event_id not in got, f"{where}: the {runtime} worker decoded an invalid payload: {got[event_id]!r}"
            letter = letters[event_id]
            assert letter.error.code == ErrorCode.INVALID_ARGUMENT and letter.error.retryable is False, where
            assert letter.error.runtime == runtime, where
            if message is not None:
                assert message in letter.error.message, where
