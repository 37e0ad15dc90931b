"""A Python worker whose handler creates a span and writes log lines (opentelemetry-api
and logging, as handler code does), for the observability tests."""

from __future__ import annotations

import logging

from opentelemetry import trace

from crosswire.worker import Context, Event, RetryLater, Worker

w = Worker("pyobs", max_in_flight=4)
log = logging.getLogger("pyobs.handler")


@w.handler("obs.work")
async def work(ctx: Context, event: Event[bytes]) -> None:
    with trace.get_tracer("pyobs").start_as_current_span("lookup stock") as span:
        span.set_attribute("sku", "A-1")
        span.add_event("cache miss")
        log.info("looked up stock for %s", event.id)
    if ctx.attempt == 1:
        log.warning("stock service busy")
        raise RetryLater(after=0.01, reason="stock service busy")
    ctx.emit("obs.done", b"ok")


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    w.run()
