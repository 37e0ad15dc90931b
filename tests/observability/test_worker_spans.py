"""Spans and log lines from a Python worker's handler reach the node over the protocol:
exported by the node as children of its CONSUMER span, and written by its logger."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import crosswire
from crosswire import Event

from .conftest import Recorded

HERE = Path(__file__).parent


async def test_python_worker_spans_and_logs(recorded: Recorded, caplog: pytest.LogCaptureFixture) -> None:
    app = crosswire.App("obsw")
    app.worker(
        "pyobs",
        command=[sys.executable, str(HERE / "py_worker.py")],
        timeout=5,
        retry=crosswire.Retry(max_attempts=3, initial=0.01, jitter=0.0),
    )
    done: list[Event[Any]] = []

    @app.handler("obs.done")
    async def finish(event: Event[bytes]) -> None:
        done.append(event)

    caplog.set_level(logging.INFO, logger="crosswire.worker.pyobs")
    async with crosswire.Node(app) as node:
        event = await node.submit("obs.work", b"", correlation_id="corr-9")
        await node.wait_idle(20)
    assert done

    consumers = sorted(recorded.named("process obs.work"), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {})["crosswire.attempt"] for s in consumers] == [1, 2]
    handles = sorted(recorded.named("handle obs.work"), key=lambda s: s.start_time or 0)
    assert len(handles) == 2
    for consumer, handle in zip(consumers, handles, strict=True):
        assert handle.parent is not None and handle.parent.span_id == consumer.context.span_id
        assert handle.context.trace_id == consumer.context.trace_id
        attrs = handle.attributes or {}
        assert attrs["crosswire.worker.name"] == "pyobs"
        assert attrs["crosswire.worker.runtime"] == "python"
        assert isinstance(attrs["process.pid"], int) and attrs["process.pid"] > 0
    assert handles[0].status.status_code is StatusCode.ERROR
    assert (handles[0].attributes or {})["error.type"] == "unavailable"
    lookups = recorded.named("lookup stock")
    assert len(lookups) == 2
    for lookup in lookups:
        parent = next(h for h in handles if h.context.span_id == (lookup.parent.span_id if lookup.parent else 0))
        assert parent is not None
        assert (lookup.attributes or {})["sku"] == "A-1"
        assert [e.name for e in lookup.events] == ["cache miss"]
    # the follow-up is created under the consumer of the attempt that emitted it
    create = recorded.one("create obs.done")
    assert create.parent is not None and create.parent.span_id == consumers[1].context.span_id
    done_span = recorded.one("process obs.done")
    assert done_span.parent is not None and done_span.parent.span_id == create.context.span_id

    lines = [r for r in caplog.records if r.name == "crosswire.worker.pyobs" and "stock" in r.getMessage()]
    assert {r.getMessage().split(" for ")[0] for r in lines} >= {"looked up stock", "stock service busy"}
    trace_id = f"{consumers[0].context.trace_id:032x}"
    for record in lines:
        assert record.trace_id == trace_id  # type: ignore[attr-defined]
        assert record.event_id == event.id  # type: ignore[attr-defined]
        assert record.correlation_id == "corr-9"  # type: ignore[attr-defined]
        assert record.binding == "pyobs:obs.work"  # type: ignore[attr-defined]
        assert record.worker == "pyobs" and record.runtime == "python"  # type: ignore[attr-defined]
        assert isinstance(record.pid, int)  # type: ignore[attr-defined]
    looked = next(r for r in lines if r.getMessage().startswith("looked up"))
    assert looked.span_id in {f"{s.context.span_id:016x}" for s in lookups}  # type: ignore[attr-defined]


async def test_a_worker_that_ships_no_spans_still_gets_its_attempt_span(recorded: Recorded) -> None:
    app = crosswire.App("obsold")
    app.worker("old", command=[sys.executable, str(HERE / "old_worker.py")], timeout=5)
    async with crosswire.Node(app) as node:
        await node.submit("obs.old", b"")
        await node.wait_idle(20)
    consumer = recorded.one("process obs.old")
    handle = recorded.one("handle obs.old")  # from the RESULT timings
    assert handle.parent is not None and handle.parent.span_id == consumer.context.span_id
    assert (handle.attributes or {})["crosswire.worker.runtime"] == "python"
    assert handle.start_time and handle.end_time and handle.end_time >= handle.start_time
