"""Run a scenario: the node in a child process, traffic offered on schedule, faults
on schedule, every event accounted for, verdicts at the end.

::

    result = await crosswire.harness.run(scenario, app="myapp:app")
    result.ok, result.verdicts, result.report   # the report is the JSON document

With the memory transport the harness hands events to the node over the control
channel; with JetStream it publishes them to the stream itself (a producer apart
from the node, so events keep arriving while the node is down) and, unless given a
``nats`` URL, runs the embedded ``nats-server`` itself (so it can restart it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from .._exceptions import ConfigurationError
from .accounting import Ledger, Verdict
from .appload import load_app, payload_types
from .control import Channel
from .delivery import Delivery, offer_event
from .errors import HarnessError
from .fault_schedule import fault
from .node_process import NodeProcess, RunsFile
from .scenario import Broker, HandlerError, HandlerHang, HandlerLatency, NodeFault, Scenario
from .series import snapshot, stats_sample
from .traffic import TrafficPlan

__all__ = ["HarnessError", "Result", "run"]

log = logging.getLogger("crosswire.harness")
_json = msgspec.json.Encoder()


class Result(msgspec.Struct):
    ok: bool
    verdicts: list[Verdict]
    fates: dict[str, Any]
    report: dict[str, Any]


def _embedded_server_class() -> Any:
    try:
        from crosswire.jetstream import EmbeddedServer  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        from .._transports.jetstream.embedded import EmbeddedServer
    return EmbeddedServer


class _Harness:
    def __init__(
        self,
        scenario: Scenario,
        app_spec: str,
        transport: str,
        nats: Sequence[str] | None,
        workdir: Path,
        node_log_level: str,
        on_tick: Callable[[_Harness], None] | None,
    ) -> None:
        self.scenario = scenario
        self.app_spec = app_spec
        self.transport = transport
        self.nats_urls = list(nats or [])
        self.own_server = transport == "jetstream" and not self.nats_urls
        self.cluster: Any = None
        self.replicas = min(3, scenario.cluster) if self.own_server and scenario.cluster >= 2 else 1
        self.workdir = workdir
        self.socket_path = str(workdir / "control.sock")
        self.node_log_path = workdir / "node.log"
        self.runs_path = workdir / "runs.jsonl"
        self.runs_path.write_bytes(b"")
        self.runs = RunsFile(self.runs_path)
        self.node_log = open(self.node_log_path, "w")  # noqa: SIM115 - closed in run()
        self.node_log_level = node_log_level
        tag = f"{os.getpid():x}{int(time.time()) % 100000:x}"
        self.stream = f"HARNESS_{tag}".upper()
        self.prefix = f"h{tag}"
        self.on_tick = on_tick
        self.types = {t.type for t in scenario.traffic if t.type}
        self.ledger = Ledger(0.0, scenario.bin)
        self.node: NodeProcess | None = None
        self.generation = 0
        self._expecting: NodeProcess | None = None
        self.server: Any = None
        self.publisher: Any = None
        self.active: dict[int, HandlerError | HandlerLatency | HandlerHang] = {}
        self.markers: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.unsettled: list[tuple[float, int]] = []
        self.notes: list[str] = []
        self.refusals: list[str] = []
        self.max_rss: int | None = None
        self.t0 = 0.0
        self.t0_mono = 0.0
        self.bindings: dict[str, dict[str, Any]] = {}
        self.phase = "starting"
        self.restart_lock = asyncio.Lock()
        self.delivery = Delivery(self)

    # -- node processes -------------------------------------------------------------------

    def expect(self, node: NodeProcess) -> None:
        self._expecting = node

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = self._expecting
        chan = Channel(reader, writer)
        if node is None:
            await chan.close()
            return
        self._expecting = None
        node.attach(chan)

    def on_hello(self, msg: dict[str, Any]) -> None:
        self.bindings = msg["bindings"]
        for name, b in self.bindings.items():
            self.ledger.max_attempts[name] = int(b["max_attempts"])
        for t, names in msg["routes"].items():
            if t not in self.ledger.routes:
                self.ledger.routes[t] = list(names)
            if not names:
                self.notes.append(f"no binding handles {t!r}")

    def on_stats(self, msg: dict[str, Any]) -> None:
        rss, sample = stats_sample(msg, t0=self.t0, generation=self.generation)
        self.max_rss = max(self.max_rss or 0, rss)
        self.samples.append(sample)

    async def start_node(self) -> None:
        self.generation += 1
        node = NodeProcess(self, self.generation)
        await node.start(timeout=60.0)
        self.node = node
        for i, f in self.active.items():
            await node.send({"t": "fault", "i": i, "on": True, "f": _json.encode(f)})
        if self.delivery.backlog:
            backlog, self.delivery.backlog = self.delivery.backlog, []
            await self.delivery.send(backlog)

    def read_runs(self) -> None:
        """Account the runs the node processes appended since the last call."""
        runs = self.runs.read()
        if runs:
            self.ledger.add_runs(runs)

    async def _runs_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self.read_runs()

    def log_tail(self, lines: int = 30) -> str:
        if not self.node_log.closed:
            self.node_log.flush()
        try:
            return "\n".join(self.node_log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- traffic ----------------------------------------------------------------------------

    async def offer_loop(self, plan: TrafficPlan) -> None:
        source = "/crosswire/harness"
        batch = self.scenario.batch
        while not plan.done:
            now = time.monotonic() - self.t0_mono
            offers = plan.until(now)
            if offers:
                self.ledger.offer(offers)
                events = [offer_event(o, source) for o in offers]
                for i in range(0, len(events), batch):
                    await self.delivery.send(events[i : i + batch])
            await asyncio.sleep(0.005)

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        plan_types = payload_types(load_app(self.app_spec))
        plan = TrafficPlan(self.scenario, plan_types)  # ids from the seed: a rerun makes the same decisions
        self.types = plan.types()
        server = await asyncio.start_unix_server(self._on_connect, path=self.socket_path)
        tasks: list[asyncio.Task[Any]] = []
        try:
            if self.transport == "jetstream":
                import crosswire

                if self.own_server and self.scenario.cluster >= 2:
                    from .cluster import LocalCluster

                    self.cluster = LocalCluster(self.workdir, self.scenario.cluster)
                    await self.cluster.start()
                    self.nats_urls = self.cluster.urls
                elif self.own_server:
                    self.server = _embedded_server_class()(self.workdir / "jetstream")
                    await self.server.start()
                    self.nats_urls = [self.server.url]
                self.publisher = crosswire.JetStreamTransport(
                    self.nats_urls, stream=self.stream, subject_prefix=self.prefix, replicas=self.replicas
                )
                await self.publisher.start()
            await self.start_node()
            self.t0_mono = time.monotonic()
            self.t0 = time.time()
            self.ledger.t0 = self.t0
            self.phase = "traffic"
            ticker = asyncio.create_task(self._ticker())
            runs_reader = asyncio.create_task(self._runs_loop())
            for i, f in enumerate(self.scenario.faults):
                for at in f.times():
                    tasks.append(asyncio.create_task(fault(self, i, f, at)))
            await self.offer_loop(plan)
            self.phase = "settling"
            await self._settle()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.phase = "stopping"
            if self.node is not None:
                await self.node.stop(timeout=float(self.scenario.node.get("drain_timeout", 30.0)) + 15)
            ticker.cancel()
            runs_reader.cancel()
            await asyncio.gather(ticker, runs_reader, return_exceptions=True)
            self.read_runs()
        finally:
            for t in tasks:
                t.cancel()
            if self.node is not None:
                await self.node.kill()
            server.close()
            if self.publisher is not None:
                with contextlib.suppress(Exception):
                    await self.publisher.close()
            if self.transport == "jetstream" and not self.own_server:
                with contextlib.suppress(Exception):
                    await self._delete_streams()
            if self.server is not None:
                with contextlib.suppress(Exception):
                    await self.server.stop()
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    await self.cluster.stop()
            self.node_log.close()
            self.runs.close()

    async def _delete_streams(self) -> None:
        """On a server the harness does not own, remove the streams (and KV buckets) of
        this run: its own stream name is unique to the run."""
        import nats

        nc = await nats.connect(self.nats_urls, connect_timeout=5, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            for info in await js.streams_info():
                name = info.config.name or ""
                if self.stream in name:
                    await js.delete_stream(name)
        finally:
            await nc.close()

    async def _settle(self) -> None:
        """Wait until every offered event is handled or dead-lettered (or the settle
        timeout passes). Runs are read continuously; the dead letters once a second,
        and as soon as the runs say nothing is left."""
        deadline = time.monotonic() + self.scenario.verdicts.settle_timeout
        next_letters = 0.0
        while True:
            self.read_runs()
            now = time.monotonic()
            node = self.node
            ready = node is not None and node.alive and not self.delivery.backlog
            if ready and (self.ledger.unresolved() == 0 or now >= next_letters):
                next_letters = now + 1.0
                assert node is not None
                with contextlib.suppress(HarnessError, TimeoutError, ConnectionError, OSError):
                    letters = await node.get_letters()
                    self.read_runs()
                    self.ledger.add_letters(letters)
                    if self.ledger.fates()["lost"] == 0:
                        return
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.1)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            # the harness's own view, sampled even while the node is down
            self.unsettled.append((round(time.time() - self.t0, 3), self.ledger.unresolved()))
            if self.on_tick is not None:
                try:
                    self.on_tick(self)
                except Exception:  # a view must never break a run
                    log.exception("live view failed")

    # -- snapshot for the live view ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return snapshot(
            self.ledger,
            phase=self.phase,
            t0=self.t0,
            duration=self.scenario.duration,
            samples=self.samples,
            generation=self.generation,
            node_alive=self.node is not None and self.node.alive,
            markers=self.markers,
        )


async def run(
    scenario: Scenario,
    *,
    app: str | None = None,
    transport: str | None = None,
    nats: Sequence[str] | None = None,
    on_tick: Callable[[Any], None] | None = None,
    node_log_level: str = "ERROR",
    workdir: str | Path | None = None,
) -> Result:
    """Run ``scenario`` against ``app`` (``module:attr``; default ``scenario.app``).

    :param transport: ``memory`` or ``jetstream`` (default ``scenario.transport``).
    :param nats: NATS URLs; without, JetStream runs on an embedded server the harness owns.
    :param on_tick: called twice a second with the running harness (live views).
    :raises HarnessError: the node process did not start.
    :raises ConfigurationError: a scenario that cannot run against this app.
    """
    spec = app or scenario.app
    if not spec:
        raise ConfigurationError("no app: pass app='module:app' (or --app), or set app in the scenario")
    kind = transport or ("jetstream" if nats else scenario.transport)
    if kind not in ("memory", "jetstream"):
        raise ConfigurationError(f"transport must be 'memory' or 'jetstream', got {kind!r}")
    node_faults = [f for f in scenario.faults if isinstance(f, NodeFault)]
    if kind == "memory" and any(isinstance(f, Broker) for f in scenario.faults):
        raise ConfigurationError("a broker fault needs the jetstream transport")
    with contextlib.ExitStack() as stack:
        if workdir is None:
            # a short path: Unix socket paths are limited to ~100 bytes
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cwh-", dir="/tmp")))
        else:
            base = Path(workdir)
            base.mkdir(parents=True, exist_ok=True)
        h = _Harness(scenario, spec, kind, nats, base, node_log_level, on_tick)
        started = time.time()
        await h.run()
        # throughput during faults: the windows of handler and worker faults (a node or
        # broker outage has no throughput by definition; its verdicts are lost/p99)
        windows = [(m["t"], max(m["end"], m["t"] + 1.0)) for m in h.markers if m["kind"] not in ("node", "broker")]
        kills = [m["t"] for m in h.markers if m["label"] == "node kill"]
        verdicts = h.ledger.verdicts(scenario.verdicts, windows=windows, max_rss=h.max_rss, node_kills=kills)
        fates = h.ledger.fates()
        from .report import build_report

        report = build_report(
            scenario=scenario,
            app=spec,
            transport=kind,
            started=started,
            ledger=h.ledger,
            verdicts=verdicts,
            fates=fates,
            samples=h.samples,
            unsettled=h.unsettled,
            markers=h.markers,
            notes=h.notes + ([f"submit refused events: {h.refusals[0]}"] if h.refusals else []),
            node_restarts=len(node_faults),
            max_rss=h.max_rss,
            bindings=h.bindings,
            node_log=h.log_tail(60) if not all(v.ok for v in verdicts) else "",
        )
        return Result(ok=all(v.ok for v in verdicts), verdicts=verdicts, fates=fates, report=report)
