"""Node side of the harness: a middleware that injects handler faults and records
every handler run.

It has the one middleware shape (``Callable[[Handler], Handler]``, from
``crosswire._types``), so it goes wherever user middleware goes. Each run is logged as
``(event_id, binding, attempt, start, end, code, faulted, root)``, twice: when it starts
(``code`` ``"^"``) and when it ends — ``code`` is then ``""`` for success, the error
code for a failure, ``"~"`` when dedup acknowledged without running the handler;
``root`` is, for a follow-up event, the id of the event that started its chain. Random fault
decisions hash ``(seed, fault, event id, attempt)``, so a rerun with the same seed
makes the same decisions whatever the timing.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import time
import zlib
from collections.abc import Callable

from .._errorinfo import ErrorCode, ErrorInfo
from .._types import Attempt, Handler, Outcome
from .scenario import HandlerError, HandlerHang, HandlerLatency
from .traffic import POISON_EXTENSION

__all__ = ["FaultMiddleware", "Run"]

HandlerFault = HandlerError | HandlerLatency | HandlerHang
Run = tuple[str, str, int, float, float, str, bool, str]

_U32 = float(2**32)


def _codes() -> dict[str, ErrorCode]:
    return {c.value: c for c in ErrorCode}


class FaultMiddleware:
    """Injects the active handler faults and logs runs to ``sink`` (default: the
    ``runs`` list). The node process's sink writes each run to a file with one
    ``write(2)`` before the outcome returns — so before the delivery is acknowledged —
    and a run survives a SIGKILL of the node that follows it. ``activate``/``deactivate`` are
    driven by the harness's fault schedule (over the control channel)."""

    def __init__(self, seed: int, sink: Callable[[Run], None] | None = None) -> None:
        self.seed = seed
        self.active: dict[int, HandlerFault] = {}
        self.runs: list[Run] = []
        self.sink: Callable[[Run], None] = sink or self.runs.append
        self._codes = _codes()

    def activate(self, index: int, fault: HandlerFault) -> None:
        self.active[index] = fault

    def deactivate(self, index: int) -> None:
        self.active.pop(index, None)

    def take_runs(self) -> list[Run]:
        runs, self.runs = self.runs, []
        return runs

    def _u(self, index: int, event_id: str, attempt: int) -> float:
        return zlib.crc32(f"{self.seed}/{index}/{event_id}/{attempt}".encode()) / _U32

    def __call__(self, inner: Handler) -> Handler:
        async def handle(attempt: Attempt) -> Outcome:
            event = attempt.event
            start = time.time()
            hit = [False]  # set by _inject before it waits, so a cut-off hang is marked too
            # a follow-up event (emitted by a handler) names the event that started its chain
            root = (event.correlationid or "") if event.causationid else ""
            # a start record first: a run cut short by a SIGKILL of the node still counts
            self.sink((event.id, attempt.binding, attempt.number, start, 0.0, "^", False, root))
            outcome: Outcome | None = None
            try:
                if event.extensions.get(POISON_EXTENSION) == 1:
                    hit[0] = True
                    outcome = Outcome(
                        error=ErrorInfo.of(ErrorCode.HANDLER_ERROR, "poison event (harness)", retryable=True)
                    )
                elif self.active:
                    outcome = await self._inject(attempt, hit)
                if outcome is None:
                    outcome = await inner(attempt)
            except asyncio.CancelledError:
                self.sink((event.id, attempt.binding, attempt.number, start, time.time(), "cancelled", hit[0], root))
                raise
            if getattr(outcome, "skipped", False):
                code = "~"
            else:
                code = outcome.error.code.value if outcome.error is not None else ""
            self.sink((event.id, attempt.binding, attempt.number, start, time.time(), code, hit[0], root))
            return outcome

        return handle

    async def _inject(self, attempt: Attempt, hit: list[bool]) -> Outcome | None:
        event_id, binding, number = attempt.event.id, attempt.binding, attempt.number
        for index, f in list(self.active.items()):
            if f.binding != "*" and f.binding != binding and not fnmatch.fnmatchcase(binding, f.binding):
                continue
            if isinstance(f, HandlerError) and f.first_attempts:
                if number > f.first_attempts or self._u(index, event_id, 0) >= f.rate:
                    continue
            elif self._u(index, event_id, number) >= f.rate:
                continue
            if isinstance(f, HandlerLatency):  # slow, not failed: the event stays healthy
                await asyncio.sleep(_latency(f, self._u(index + 7919, event_id, number)))
                continue
            hit[0] = True
            if isinstance(f, HandlerHang):
                await asyncio.sleep(f.seconds)
                return Outcome(error=ErrorInfo.of(ErrorCode.TIMEOUT, "hung run (harness)", retryable=True))
            code = self._codes.get(f.code, ErrorCode.HANDLER_ERROR)
            return Outcome(error=ErrorInfo.of(code, f.message, retryable=f.retryable, retry_after=f.retry_after))
        return None


def _latency(f: HandlerLatency, u: float) -> float:
    u = min(max(u, 1e-9), 1 - 1e-9)
    if f.dist == "fixed":
        ms = f.ms
    elif f.dist == "uniform":
        ms = f.ms + (max(f.ms_max, f.ms) - f.ms) * u
    elif f.dist == "exponential":
        ms = -f.ms * math.log(1 - u)
    else:  # lognormal with median ms: inverse normal CDF by a rational approximation
        ms = f.ms * math.exp(f.sigma * _probit(u))
    return max(0.0, ms / 1000)


def _probit(p: float) -> float:
    # Acklam's approximation; plenty for latency draws
    a = (-39.696830, 220.946098, -275.928510, 138.357751, -30.664798, 2.506628)
    b = (-54.476098, 161.585836, -155.698979, 66.801311, -13.280681)
    c = (-0.007784894, -0.32239645, -2.400758, -2.549732, 4.374664, 2.938163)
    d = (0.007784695, 0.32246712, 2.445134, 3.754408)
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    if p > 1 - 0.02425:
        return -_probit(1 - p)
    q = p - 0.5
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
