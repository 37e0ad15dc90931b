"""The scenario model: traffic, faults and verdicts, as typed msgspec Structs.

A scenario is written in Python (these Structs) or in a TOML file (:func:`load`);
both go through the same validation. Times are seconds from the start of the run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from .._exceptions import ConfigurationError

__all__ = [
    "Broker",
    "Burst",
    "Constant",
    "HandlerError",
    "HandlerHang",
    "HandlerLatency",
    "Keys",
    "NodeFault",
    "Payload",
    "Ramp",
    "Replay",
    "Scenario",
    "Shape",
    "Sine",
    "Step",
    "Sum",
    "Traffic",
    "Verdicts",
    "WorkerFault",
    "Fault",
    "label",
    "load",
    "loads",
]

NonNeg = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


# -- traffic shapes: a rate (events/s) as a function of time ----------------------------


class Constant(msgspec.Struct, tag="constant", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """``rate`` events/s."""

    rate: NonNeg


class Ramp(msgspec.Struct, tag="ramp", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """From ``start_rate`` to ``end_rate`` linearly over ``over`` seconds (default: the
    traffic's duration), then ``end_rate``."""

    start_rate: NonNeg
    end_rate: NonNeg
    over: Positive | None = None


class Step(msgspec.Struct, tag="step", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """Piecewise constant: ``steps = [[t, rate], ...]`` (t relative to the traffic's start)."""

    steps: list[tuple[NonNeg, NonNeg]]


class Burst(msgspec.Struct, tag="burst", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """On/off: ``rate`` for ``on`` seconds, then ``base`` for ``off`` seconds, repeated."""

    rate: NonNeg
    on: Positive
    off: NonNeg
    base: NonNeg = 0.0


class Sine(msgspec.Struct, tag="sine", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """A waveform: ``base + amplitude * sin(2π (t/period) + phase)``, never below 0."""

    base: NonNeg
    amplitude: NonNeg
    period: Positive
    phase: float = 0.0


class Sum(msgspec.Struct, tag="sum", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """The sum of several shapes (a waveform with bursts on top, ...)."""

    parts: list[Constant | Ramp | Step | Burst | Sine]


class Replay(msgspec.Struct, tag="replay", tag_field="kind", frozen=True, forbid_unknown_fields=True):
    """The events of a recording (``crosswire record``) at their recorded times ÷ ``speed``,
    with their recorded types, keys and payloads."""

    file: str
    speed: Positive = 1.0


Shape = Constant | Ramp | Step | Burst | Sine | Sum | Replay


class Keys(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Partition keys: ``none``; ``uniform`` over ``count`` keys; ``zipf`` (hot keys, rank
    ``k`` drawn with weight ``1/k**s``)."""

    kind: Literal["none", "uniform", "zipf"] = "uniform"
    count: Annotated[int, msgspec.Meta(ge=1)] = 100
    s: Positive = 1.1
    prefix: str = "k"


class Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where payloads come from.

    - ``type``: generated from the handler's annotated payload type (``Event[T]``) or
      ``type_path`` (``module:Name``); valid by construction; ``str_len``/``bytes_len``
      size the strings and bytes (large payloads); ``distinct`` values are generated
      once and reused (seeded).
    - ``fixed``: ``value`` as it is (a TOML table), e.g. for a Go or Rust worker.
    - ``samples``: a JSON-lines ``file``, one payload per line, drawn at random.
    """

    kind: Literal["type", "fixed", "samples"] = "type"
    type_path: str | None = None
    value: Any = None
    file: str | None = None
    encoding: Literal["msgpack", "json"] = "msgpack"
    str_len: tuple[int, int] = (4, 16)
    bytes_len: tuple[int, int] = (4, 32)
    list_len: tuple[int, int] = (0, 4)
    distinct: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1024


class Traffic(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One stream of offered events. Several streams add up.

    ``arrivals``: ``even`` spaces events by the shape's rate; ``poisson`` draws them
    (a non-homogeneous Poisson process of that rate). ``poison`` is the fraction of
    events marked as poison: the fault middleware fails every run of them, retryably,
    so each must end dead-lettered after exactly ``max_attempts`` runs. With
    ``poison_action = "mark"`` the middleware only marks them (extension
    ``harnesspoison``) and leaves failing to the handler — e.g. a worker that hangs.
    """

    type: str = ""
    shape: Shape = Constant(rate=100.0)
    start: NonNeg = 0.0
    duration: Positive | None = None
    arrivals: Literal["even", "poisson"] = "even"
    keys: Keys = Keys()
    payload: Payload = Payload()
    poison: Fraction = 0.0
    poison_action: Literal["fail", "mark"] = "fail"
    deadline: Positive | None = None


# -- faults ----------------------------------------------------------------------------


class _Timed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    at: NonNeg = 0.0
    every: Positive | None = None
    count: Annotated[int, msgspec.Meta(ge=1)] = 1

    def times(self) -> list[float]:
        if self.every is None:
            return [self.at]
        return [self.at + i * self.every for i in range(self.count)]


class _HandlerFault(_Timed, frozen=True, kw_only=True):
    binding: str = "*"  # a binding name, or "*" for every binding
    duration: Positive = 1e9
    rate: Fraction = 1.0


class HandlerError(_HandlerFault, tag="handler_error", tag_field="kind", frozen=True, kw_only=True):
    """A fraction ``rate`` of runs fail with ``code`` (retryable or not). With
    ``first_attempts = n`` the choice is per event instead: a fraction ``rate`` of
    events fail their first ``n`` attempts, then succeed (flaky events)."""

    code: str = "unavailable"
    first_attempts: Annotated[int, msgspec.Meta(ge=0)] = 0
    retryable: bool = True
    retry_after: NonNeg | None = None
    message: str = "injected fault"


class HandlerLatency(_HandlerFault, tag="handler_latency", tag_field="kind", frozen=True, kw_only=True):
    """A fraction ``rate`` of runs wait first: ``fixed`` ``ms``; ``uniform`` in
    ``[ms, ms_max]``; ``exponential`` with mean ``ms``; ``lognormal`` with median ``ms``."""

    dist: Literal["fixed", "uniform", "exponential", "lognormal"] = "exponential"
    ms: NonNeg = 10.0
    ms_max: NonNeg = 0.0
    sigma: Positive = 0.5


class HandlerHang(_HandlerFault, tag="handler_hang", tag_field="kind", frozen=True, kw_only=True):
    """A fraction ``rate`` of runs hang for ``seconds`` (past any deadline), then fail."""

    seconds: Positive = 3600.0


class WorkerFault(_Timed, tag="worker", tag_field="kind", frozen=True, kw_only=True):
    """Send ``signal`` to a worker process (by its name in ``App.worker``).
    ``SIGSTOP`` is followed by ``SIGCONT`` after ``pause`` seconds; ``SIGTERM`` is a
    clean restart, ``SIGKILL`` a crash (the pool restarts the worker either way)."""

    worker: str
    signal: Literal["SIGKILL", "SIGTERM", "SIGSTOP", "SIGCONT"] = "SIGKILL"
    pause: Positive = 2.0


class Broker(_Timed, tag="broker", tag_field="kind", frozen=True, kw_only=True):
    """Restart a nats-server the harness started: ``kill`` (SIGKILL) or ``stop``
    (SIGTERM), ``down`` seconds, then start it again on the same port and store. On a
    local cluster (``Scenario.cluster``) ``server`` picks the member."""

    action: Literal["kill", "stop"] = "kill"
    down: NonNeg = 1.0
    server: Annotated[int, msgspec.Meta(ge=0)] = 0


class NodeFault(_Timed, tag="node", tag_field="kind", frozen=True, kw_only=True):
    """The node process: ``kill`` (SIGKILL) or ``term`` (SIGTERM: a drain), ``down``
    seconds, then a new node process."""

    action: Literal["kill", "term"] = "kill"
    down: NonNeg = 0.5


Fault = HandlerError | HandlerLatency | HandlerHang | WorkerFault | Broker | NodeFault


# -- verdicts --------------------------------------------------------------------------


class Verdicts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What must hold at the end. ``None`` leaves a verdict out.

    - ``lost``: at most this many events neither handled nor dead-lettered (default 0).
    - ``max_duplicates``: events handled successfully more than once in one binding.
    - ``max_dead_lettered``: dead letters of events that are not poison.
    - ``poison_dead_lettered``: every poison event dead-lettered after exactly
      ``max_attempts`` handler runs (one fewer per node SIGKILL it lived through: a
      delivery a killed node held may count as a run, and the verdict says so).
    - ``p99_ms``: p99 submit→handled latency of healthy events (not poison, no fault hit).
    - ``healthy_throughput_pct``: healthy events handled during handler and worker
      fault windows, as a percentage of those offered in them.
    - ``key_order``: per binding and key, first runs started in the order offered.
    - ``max_rss_mb``: the node process's peak resident memory.
    - ``settle_timeout``: how long after the traffic ends events may take to settle.
    """

    lost: int | None = 0
    max_duplicates: int | None = None
    max_dead_lettered: int | None = None
    poison_dead_lettered: bool = False
    p99_ms: Positive | None = None
    healthy_throughput_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    key_order: bool = False
    max_rss_mb: Positive | None = None
    settle_timeout: Positive = 30.0


# -- the scenario ----------------------------------------------------------------------


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Traffic, faults and verdicts for one run.

    ``duration`` is the traffic's length; ``seed`` makes the events (ids, keys,
    payloads, poison marks, arrival times) and every random fault decision the same
    on every run. ``app``/``transport`` are defaults the command line overrides.
    ``node`` options go to ``Node(...)`` (e.g. ``max_pending``, ``drain_timeout``).
    ``cluster = n`` (JetStream, no ``--nats``) runs a local cluster of ``n`` servers
    instead of one embedded server, with streams of ``min(n, 3)`` replicas.
    """

    name: str = "scenario"
    duration: Positive = 10.0
    seed: int = 1
    app: str | None = None
    transport: Literal["memory", "jetstream"] = "memory"
    traffic: list[Traffic] = []
    faults: list[Fault] = []
    verdicts: Verdicts = Verdicts()
    bin: Positive = 1.0
    batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256
    node: dict[str, Any] = {}
    cluster: Annotated[int, msgspec.Meta(ge=0, le=7)] = 0
    description: str = ""

    def __post_init__(self) -> None:
        for i, t in enumerate(self.traffic):
            if not t.type and not isinstance(t.shape, Replay):
                raise ConfigurationError(f"traffic[{i}] needs a type (the event type to offer)")

    def scaled(self, factor: float, *, shapes: bool = True) -> Scenario:
        """The same scenario with every time (duration, starts, fault times, periods)
        multiplied by ``factor`` and rates unchanged: a short test becomes a soak.
        ``shapes=False`` keeps the shapes' own times (a burst cycle then repeats more
        often instead of growing)."""
        rs = msgspec.structs.replace

        def shape(sh: Any) -> Any:
            if isinstance(sh, Ramp) and sh.over is not None:
                return rs(sh, over=sh.over * factor)
            if isinstance(sh, Step):
                return rs(sh, steps=[(t * factor, r) for t, r in sh.steps])
            if isinstance(sh, Burst):
                return rs(sh, on=sh.on * factor, off=sh.off * factor)
            if isinstance(sh, Sine):
                return rs(sh, period=sh.period * factor)
            if isinstance(sh, Sum):
                return rs(sh, parts=[shape(p) for p in sh.parts])
            return sh

        traffic = [
            rs(
                t,
                start=t.start * factor,
                duration=None if t.duration is None else t.duration * factor,
                shape=shape(t.shape) if shapes else t.shape,
            )
            for t in self.traffic
        ]
        faults: list[Any] = []
        for f in self.faults:
            changes: dict[str, Any] = {"at": f.at * factor}
            if f.every is not None:
                changes["every"] = f.every * factor
            if isinstance(f, (HandlerError, HandlerLatency, HandlerHang)) and f.duration < 1e8:
                changes["duration"] = f.duration * factor
            faults.append(rs(f, **changes))
        verdicts = rs(self.verdicts, settle_timeout=self.verdicts.settle_timeout * max(1.0, factor / 2))
        return rs(self, duration=self.duration * factor, traffic=traffic, faults=faults, verdicts=verdicts)

    def fault_windows(self) -> list[tuple[float, float, str]]:
        """Every fault occurrence as ``(start, end, label)``."""
        out: list[tuple[float, float, str]] = []
        for f in self.faults:
            for at in f.times():
                if isinstance(f, (HandlerError, HandlerLatency, HandlerHang)):
                    out.append((at, at + f.duration, label(f)))
                elif isinstance(f, WorkerFault):
                    out.append((at, at + (f.pause if f.signal == "SIGSTOP" else 1.0), label(f)))
                else:
                    out.append((at, at + max(f.down, 1.0), label(f)))
        return sorted(out)


def label(f: Fault) -> str:
    """A short human label for a fault (report markers, the live view)."""
    if isinstance(f, HandlerError):
        return f"{f.binding}: {f.rate:.0%} {f.code}"
    if isinstance(f, HandlerLatency):
        return f"{f.binding}: +{f.ms:g} ms {f.dist}"
    if isinstance(f, HandlerHang):
        return f"{f.binding}: hang {f.rate:.0%}"
    if isinstance(f, WorkerFault):
        return f"{f.worker}: {f.signal}"
    if isinstance(f, Broker):
        return f"broker {f.action}" + (f" n{f.server}" if f.server else "")
    return f"node {f.action}"


def loads(text: str, *, base: Path | None = None) -> Scenario:
    """Parse a TOML scenario. Relative file paths resolve against ``base``.

    :raises ConfigurationError: invalid TOML or a field of the wrong type (the message
        names the field).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"scenario is not valid TOML: {exc}") from None
    if base is not None:
        _resolve_files(raw, base)
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"scenario: {exc}") from None


def load(path: str | Path) -> Scenario:
    """Read a TOML scenario file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read scenario {str(p)!r}: {exc.strerror}") from None
    return loads(text, base=p.parent)


def _resolve_files(raw: dict[str, Any], base: Path) -> None:
    for t in raw.get("traffic", []) or []:
        if not isinstance(t, dict):
            continue
        for section in (t.get("shape"), t.get("payload")):
            if isinstance(section, dict) and isinstance(section.get("file"), str):
                f = Path(section["file"])
                if not f.is_absolute() and (base / f).exists():
                    section["file"] = str(base / f)
