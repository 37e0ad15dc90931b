"""A Python worker that ships no spans and no log frames, as a worker SDK from before
they existed: the node must still trace its attempts (from the RESULT timings)."""

from __future__ import annotations

import logging

from crosswire.worker import Context, Event, Worker


class OldWorker(Worker):
    def __init__(self, name: str) -> None:
        super().__init__(name, max_in_flight=2)
        self._observe.take = lambda delivery_id: []  # type: ignore[method-assign]
        self._observe.start_logs = lambda send: None  # type: ignore[method-assign]


w = OldWorker("old")


@w.handler("obs.old")
async def old(ctx: Context, event: Event[bytes]) -> None:
    logging.getLogger("old").warning("not forwarded")


if __name__ == "__main__":
    w.run()
