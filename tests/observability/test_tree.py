"""The trace tree `make demo` prints, from recorded spans."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from rich.console import Console

import crosswire
from crosswire import Event, Reject
from crosswire._observability.tree import SpanRecorder, trace_tree

from .conftest import Recorded


async def test_the_tree_shows_parents_runtimes_and_outcomes(recorded: Recorded) -> None:
    recorder = SpanRecorder()
    provider: TracerProvider = recorded.provider
    provider.add_span_processor(recorder)
    app = crosswire.App("tree")

    @app.handler("t.first")
    async def first(event: Event[bytes]) -> Event[bytes]:
        return Event.new("t.second", b"")

    @app.handler("t.second")
    async def second(event: Event[bytes]) -> None:
        raise Reject("no")

    async with crosswire.Node(app) as node:
        event = await node.submit("t.first", b"")
        await node.wait_idle(5)
    assert event.traceparent is not None
    console = Console(width=200, record=True, color_system=None)
    console.print(trace_tree(recorder.trace(event.traceparent[3:35])))
    lines = console.export_text().splitlines()
    assert lines[0].startswith(f"trace {event.traceparent[3:35]} (4 spans)")
    names = [line.split("── ")[1].split("  ")[0] for line in lines[1:]]
    assert names == ["send t.first", "process t.first attempt 1", "create t.second", "process t.second attempt 1"]
    depth = [line.index("──") for line in lines[1:]]
    assert depth == sorted(depth) and len(set(depth)) == 4  # each a child of the one before
    assert "python" in lines[2] and "ok" in lines[2]
    assert "dead letter (rejected)" in lines[4]
