"""spec/vectors/payloads/ through a real Python worker process (issue: payloads mean the
same in every SDK). The node delivers every vector's forms to ``python -m
crosswire.testworker``, whose ``test.payload.order`` / ``test.payload.numbers`` handlers
take ``Event[Order]`` / ``Event[Numbers]`` and emit what they read; valid vectors must
come back equal to ``expected`` field by field, invalid ones must be dead-lettered as the
Python worker's ``invalid_argument``, the handler never having run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import crosswire
from crosswire import ErrorCode, Event

_spec = importlib.util.spec_from_file_location(
    "payload_vectors", Path(__file__).resolve().parents[1] / "conformance" / "test_payload_vectors.py"
)
assert _spec is not None and _spec.loader is not None
vectors = importlib.util.module_from_spec(_spec)
sys.modules["payload_vectors"] = vectors  # its Structs' annotations resolve in it
_spec.loader.exec_module(vectors)


async def test_python_worker_decodes_every_vector_like_the_node() -> None:
    app = crosswire.App("payload-vectors-python")
    name = "testworker-python"
    app.worker(name, command=[sys.executable, "-m", "crosswire.testworker", "--name", name], timeout=10.0)
    got: dict[str, Any] = {}

    @app.handler("test.payload.order.decoded")
    async def order_read(event: Event[vectors.Order]) -> None:  # type: ignore[name-defined]
        assert event.causationid is not None
        got[event.causationid] = event.payload

    @app.handler("test.payload.numbers.decoded")
    async def numbers_read(event: Event[vectors.Numbers]) -> None:  # type: ignore[name-defined]
        assert event.causationid is not None
        got[event.causationid] = event.payload

    sent: dict[str, tuple[dict[str, Any], str]] = {}
    events = []
    for sub in ("valid", "invalid"):
        for path in vectors._files(sub):
            vector = json.loads(path.read_text())
            for form, content_type in vectors.FORMS.items():
                if form in vector:
                    event = Event.new(
                        f"test.payload.{vector['schema'].lower()}",
                        vectors._data(vector, form),
                        datacontenttype=content_type,
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
            assert event_id in got, f"{where}: the worker emitted nothing; dead letter: {letters.get(event_id)}"
            vectors._check(where, vector["expected"], got[event_id])
        else:
            assert event_id not in got, f"{where}: the worker decoded an invalid payload: {got[event_id]!r}"
            letter = letters[event_id]
            assert letter.error.code == ErrorCode.INVALID_ARGUMENT and letter.error.retryable is False, where
            assert letter.error.runtime == "python", where
            assert "payload does not decode as" in letter.error.message, where
