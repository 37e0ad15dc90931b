"""Traffic: shapes as rates over time, arrivals, keys, and the offered events.

Arrivals are computed on a fixed grid of ticks (not wall time), so the same seed
gives the same events — ids, types, keys, payloads, poison marks and scheduled
times — on every run, however fast the machine is.
"""

from __future__ import annotations

import bisect
import math
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from .._exceptions import ConfigurationError
from .payloads import PayloadPool
from .scenario import Burst, Constant, Keys, Ramp, Replay, Scenario, Shape, Sine, Step, Sum, Traffic

__all__ = ["POISON_EXTENSION", "Offer", "Recorded", "TrafficPlan", "rate_at", "read_recording"]

POISON_EXTENSION = "harnesspoison"  # set on events the fault middleware always fails
TICK = 0.005


class Offer(msgspec.Struct, array_like=True, gc=False):
    """One offered event (the harness side of the ledger)."""

    id: str
    type: str
    key: str | None
    data: bytes | None
    content_type: str | None
    poison: int  # 0: healthy; 1: poison, failed by the middleware; 2: poison, only marked
    at: float  # scheduled offset from the start, seconds
    deadline: float | None = None


class Recorded(msgspec.Struct, forbid_unknown_fields=False):
    """One line of a recording: offset ``t`` (s), the event's type, key and payload.

    ``data`` is the payload as JSON when ``datacontenttype`` is JSON, else base64
    (``data_base64``), so a recording is readable and round-trips bytes exactly.
    """

    t: float
    type: str
    key: str | None = None
    id: str | None = None
    datacontenttype: str | None = None
    data: Any = None
    data_base64: str | None = None

    def payload(self) -> bytes | None:
        if self.data_base64 is not None:
            import base64

            return base64.b64decode(self.data_base64)
        if self.data is None:
            return None
        return msgspec.json.encode(self.data)


def read_recording(path: str | Path) -> list[Recorded]:
    """Read a JSON-lines recording; the first line may be a header ``{"recording": ...}``."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read recording {str(p)!r}: {exc.strerror}") from None
    out: list[Recorded] = []
    decoder = msgspec.json.Decoder(Recorded)
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith('{"recording"'):
            continue
        try:
            out.append(decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ConfigurationError(f"{p}:{n}: not a recorded event: {exc}") from None
    out.sort(key=lambda r: r.t)
    return out


def rate_at(shape: Shape, t: float, span: float) -> float:
    """The shape's rate (events/s) at ``t`` seconds into its traffic (of length ``span``)."""
    if isinstance(shape, Constant):
        return shape.rate
    if isinstance(shape, Ramp):
        over = shape.over or span
        f = min(1.0, t / over) if over > 0 else 1.0
        return shape.start_rate + (shape.end_rate - shape.start_rate) * f
    if isinstance(shape, Step):
        rate = 0.0
        for at, r in shape.steps:
            if t >= at:
                rate = r
        return rate
    if isinstance(shape, Burst):
        cycle = shape.on + shape.off
        return shape.rate if (t % cycle) < shape.on else shape.base
    if isinstance(shape, Sine):
        return max(0.0, shape.base + shape.amplitude * math.sin(2 * math.pi * t / shape.period + shape.phase))
    if isinstance(shape, Sum):
        return sum(rate_at(p, t, span) for p in shape.parts)
    return 0.0


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class _Keys:
    def __init__(self, spec: Keys) -> None:
        self.spec = spec
        self.names = [f"{spec.prefix}{i}" for i in range(spec.count)]
        self.cum: list[float] = []
        if spec.kind == "zipf":
            total = 0.0
            for k in range(1, spec.count + 1):
                total += 1.0 / k**spec.s
                self.cum.append(total)
            self.cum = [c / total for c in self.cum]

    def pick(self, rng: random.Random) -> str | None:
        if self.spec.kind == "none":
            return None
        if self.spec.kind == "uniform":
            return self.names[int(rng.random() * self.spec.count)]
        return self.names[min(bisect.bisect_left(self.cum, rng.random()), self.spec.count - 1)]


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


class _Source:
    def __init__(self, index: int, traffic: Traffic, scenario: Scenario, payload_type: Any, run_tag: str) -> None:
        self.index = index
        self.t = traffic
        self.start = traffic.start
        self.span = traffic.duration if traffic.duration is not None else max(0.0, scenario.duration - traffic.start)
        self.end = self.start + self.span
        self.rng = random.Random(_seed(scenario.seed, "traffic", index))
        self.keys = _Keys(traffic.keys)
        self.prefix = f"{run_tag}.{index}."
        self.n = 0
        self.acc = 0.0
        self.replay: list[Recorded] | None = None
        self.pos = 0
        if isinstance(traffic.shape, Replay):
            self.replay = read_recording(traffic.shape.file)
            self.speed = traffic.shape.speed
            self.pool: PayloadPool | None = None
            if self.replay and traffic.duration is None:
                self.end = self.start + self.replay[-1].t / self.speed + TICK
        else:
            self.pool = PayloadPool(
                traffic.payload,
                payload_type,
                random.Random(_seed(scenario.seed, "payload", index)),
                where=f"traffic[{index}] ({traffic.type})",
            )

    def emit(self, lo: float, hi: float, out: list[Offer]) -> None:
        """Append the arrivals in [lo, hi) (scenario time)."""
        if hi <= self.start or lo >= self.end:
            return
        if self.replay is not None:
            self._replay(hi, out)
            return
        t_rel = (lo + hi) / 2 - self.start
        expected = rate_at(self.t.shape, t_rel, self.span) * (hi - lo)
        if self.t.arrivals == "poisson":
            n = _poisson(self.rng, expected)
        else:
            self.acc += expected
            n = int(self.acc + 1e-9)
            self.acc -= n
        if not n:
            return
        rng, t, pool, keys, poison = self.rng, self.t, self.pool, self.keys, self.t.poison
        mark = 1 if t.poison_action == "fail" else 2
        assert pool is not None
        step = (hi - lo) / n
        for i in range(n):
            self.n += 1
            out.append(
                Offer(
                    f"{self.prefix}{self.n}",
                    t.type,
                    keys.pick(rng),
                    pool.pick(rng),
                    pool.content_type,
                    mark if poison > 0 and rng.random() < poison else 0,
                    lo + i * step,
                    t.deadline,
                )
            )

    def _replay(self, hi: float, out: list[Offer]) -> None:
        assert self.replay is not None
        rec = self.replay
        while self.pos < len(rec) and self.start + rec[self.pos].t / self.speed < hi:
            r = rec[self.pos]
            self.pos += 1
            self.n += 1
            out.append(
                Offer(
                    f"{self.prefix}{self.n}",
                    r.type,
                    r.key,
                    r.payload(),
                    r.datacontenttype,
                    0,
                    self.start + r.t / self.speed,
                    None,
                )
            )


class TrafficPlan:
    """Every traffic stream of a scenario; :meth:`until` yields what is due.

    ``payload_types`` maps an event type to its handler's payload type (or ``None``).
    """

    def __init__(self, scenario: Scenario, payload_types: Callable[[str], Any], *, run_tag: str | None = None) -> None:
        tag = run_tag or f"h{scenario.seed}"
        self.sources = [_Source(i, t, scenario, payload_types(t.type), tag) for i, t in enumerate(scenario.traffic)]
        self.end = max([s.end for s in self.sources], default=0.0)
        self.tick = 0  # the next tick to emit

    def types(self) -> set[str]:
        """Every event type the plan offers (replayed recordings included)."""
        out: set[str] = set()
        for s in self.sources:
            if s.replay is not None:
                out.update(r.type for r in s.replay)
            else:
                out.add(s.t.type)
        return out

    @property
    def done(self) -> bool:
        return self.tick * TICK >= self.end

    def until(self, now: float) -> list[Offer]:
        """The offers scheduled before ``now`` (scenario seconds) not yet returned, in time order."""
        out: list[Offer] = []
        last = min(now, self.end + TICK)
        while (self.tick + 1) * TICK <= last:
            lo, hi = self.tick * TICK, (self.tick + 1) * TICK
            self.tick += 1
            before = len(out)
            for s in self.sources:
                s.emit(lo, hi, out)
            if len(self.sources) > 1 and len(out) - before > 1:
                out[before:] = sorted(out[before:], key=lambda o: o.at)
        return out

    def all(self) -> list[Offer]:
        """Every offer of the plan (for tests and dry runs)."""
        return self.until(self.end + 1.0)
