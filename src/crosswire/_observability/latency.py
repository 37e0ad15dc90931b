"""Handler latency as a worker reports it (``result.duration_ns``), in the fixed
buckets of the node's own latency histogram. Plain counters on the event path; the
metrics collector reads them at scrape time."""

from __future__ import annotations

import bisect

from .._binding import LATENCY_BUCKETS

__all__ = ["WorkerLatency"]


class WorkerLatency:
    """Counts per bucket (the last is above every bound) and the sum, in seconds.
    One event loop owns it."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def record_ns(self, duration_ns: int) -> None:
        seconds = duration_ns / 1e9
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
