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
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import msgspec

from .._app import App
from .._envelope import Event, encode_event
from .._exceptions import ConfigurationError, CrosswireError
from .._function import payload_type
from .accounting import Ledger, Verdict, percentile
from .appload import load_app
from .control import Channel
from .scenario import Broker, HandlerError, HandlerHang, HandlerLatency, NodeFault, Scenario, WorkerFault, label
from .traffic import POISON_EXTENSION, Offer, TrafficPlan

__all__ = ["HarnessError", "Result", "run"]

log = logging.getLogger("crosswire.harness")
_json = msgspec.json.Encoder()
_runs_decoder = msgspec.json.Decoder(tuple[str, str, int, float, float, str, bool, str])


_KINDS: dict[type, str] = {
    HandlerError: "handler_error",
    HandlerLatency: "handler_latency",
    HandlerHang: "handler_hang",
}


class HarnessError(CrosswireError):
    """The harness could not run the scenario (the node did not start, ...)."""


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


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def payload_types(app: App) -> Callable[[str], Any]:
    """Event type → the payload type of the first Python handler it routes to."""

    def lookup(event_type: str) -> Any:
        for config in app.handlers:
            if _matches(config.pattern, event_type):
                return payload_type(config.fn)
        return None

    return lookup


class _NodeProcess:
    """One node child process and its control channel."""

    def __init__(self, harness: _Harness, generation: int) -> None:
        self.h = harness
        self.generation = generation
        self.proc: asyncio.subprocess.Process | None = None
        self.chan: Channel | None = None
        self.hello: dict[str, Any] | None = None
        self.ready = asyncio.Event()
        self.exited = asyncio.Event()
        self.letters: asyncio.Future[list[Any]] | None = None
        self.reader: asyncio.Task[None] | None = None
        self._exit_task: asyncio.Task[None] | None = None
        self.error: str | None = None

    async def start(self, timeout: float) -> None:
        h = self.h
        args = [
            sys.executable, "-m", "crosswire.harness.child",
            "--app", h.app_spec,
            "--socket", h.socket_path,
            "--runs", str(h.runs_path),
            "--transport", h.transport,
            "--nats", ",".join(h.nats_urls),
            "--stream", h.stream,
            "--prefix", h.prefix,
            "--replicas", str(h.replicas),
            "--seed", str(h.scenario.seed),
            "--types", json.dumps(sorted({o for o in h.types})),
            "--node-options", json.dumps(h.scenario.node),
            "--log-level", h.node_log_level,
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        h.node_log.write(f"--- node process {self.generation} ---\n")
        h.node_log.flush()
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=h.node_log, stderr=h.node_log, env=env
        )
        self._exit_task = asyncio.get_running_loop().create_task(self._wait_exit())
        h.expect(self)
        _done, _ = await asyncio.wait(
            [asyncio.ensure_future(self.ready.wait()), asyncio.ensure_future(self.exited.wait())],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not self.ready.is_set():
            await self.kill()
            why = self.error or ("exited" if self.exited.is_set() else f"not ready within {timeout:g}s")
            raise HarnessError(f"node process {why}; its log:\n{h.log_tail()}")

    async def _wait_exit(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self.exited.set()
        if self.letters is not None and not self.letters.done():
            self.letters.set_exception(HarnessError("node process exited"))

    def attach(self, chan: Channel) -> None:
        self.chan = chan
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.chan is not None
        h = self.h
        while True:
            msg = await self.chan.recv()
            if msg is None:
                return
            kind = msg.get("t")
            if kind == "runs":
                h.ledger.add_runs(msg["r"])
            elif kind == "stats":
                h.on_stats(msg)
            elif kind == "hello":
                self.hello = msg
                h.on_hello(msg)
                self.ready.set()
            elif kind == "letters":
                if self.letters is not None and not self.letters.done():
                    self.letters.set_result(msg["l"])
            elif kind == "refused":
                h.ledger.refuse(msg["ids"])
                h.refusals.append(str(msg.get("error")))
            elif kind == "signalled":
                if not msg.get("ok"):
                    h.notes.append(f"worker fault not applied: {msg.get('why')}")
            elif kind == "error":
                self.error = str(msg.get("message"))

    @property
    def alive(self) -> bool:
        return self.ready.is_set() and not self.exited.is_set() and self.chan is not None and not self.chan.closed

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.chan is not None
        await self.chan.send(msg)

    async def get_letters(self, timeout: float = 30.0) -> list[Any]:
        self.letters = asyncio.get_running_loop().create_future()
        await self.send({"t": "letters"})
        return await asyncio.wait_for(self.letters, timeout)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.exited.wait()

    async def terminate(self, timeout: float) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
        except TimeoutError:
            await self.kill()

    async def stop(self, timeout: float) -> None:
        if self.alive:
            with contextlib.suppress(ConnectionError, OSError):
                await self.send({"t": "stop"})
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
        except TimeoutError:
            await self.kill()


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
        self._runs_file: Any = None
        self._runs_rest = b""
        self.node_log = open(self.node_log_path, "w")  # noqa: SIM115 - closed in run()
        self.node_log_level = node_log_level
        tag = f"{os.getpid():x}{int(time.time()) % 100000:x}"
        self.stream = f"HARNESS_{tag}".upper()
        self.prefix = f"h{tag}"
        self.on_tick = on_tick
        self.types = {t.type for t in scenario.traffic if t.type}
        self.ledger = Ledger(0.0, scenario.bin)
        self.node: _NodeProcess | None = None
        self.generation = 0
        self._expecting: _NodeProcess | None = None
        self.server: Any = None
        self.publisher: Any = None
        self.active: dict[int, HandlerError | HandlerLatency | HandlerHang] = {}
        self.markers: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.unsettled: list[tuple[float, int]] = []
        self.notes: list[str] = []
        self.refusals: list[str] = []
        self.backlog: list[Event[Any]] = []
        self.max_rss: int | None = None
        self.t0 = 0.0
        self.t0_mono = 0.0
        self.bindings: dict[str, dict[str, Any]] = {}
        self.phase = "starting"
        self._send_lock = asyncio.Lock()
        self._restart_lock = asyncio.Lock()
        self.sent = 0

    # -- node processes -------------------------------------------------------------------

    def expect(self, node: _NodeProcess) -> None:
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
        s = msg["s"]
        rss = int(msg.get("rss") or 0)
        self.max_rss = max(self.max_rss or 0, rss)
        bindings = s.get("bindings", {})
        queue = sum(int((b.get("queue") or {}).get("queued", 0)) for b in bindings.values())
        running = sum(int((b.get("queue") or {}).get("running", 0)) for b in bindings.values())
        workers = s.get("workers", {}) or {}
        transport = s.get("transport") or {}
        # memory: each group's pending/held back/delayed; JetStream: pulled, not yet dispatched
        backlog = sum(
            int(g.get(k) or 0)
            for g in (transport.get("groups") or [])
            if isinstance(g, dict)
            for k in ("pending", "held_back", "delayed")
        ) + sum(int(sub.get("queued") or 0) for sub in (transport.get("subscriptions") or []) if isinstance(sub, dict))
        self.samples.append(
            {
                "t": round(float(msg["at"]) - self.t0, 3),
                "node": self.generation,
                "queued": queue,
                "running": running,
                "backlog": backlog,
                "pending": int(s.get("pending", 0)),
                "retried": sum(int(b.get("retried", 0)) for b in bindings.values()),
                "dead_lettered": sum(int(b.get("dead_lettered", 0)) for b in bindings.values()),
                "breakers": {n: (b.get("breaker") or {}).get("state") for n, b in bindings.items() if b.get("breaker")},
                "credit": {n: w.get("credit") for n, w in workers.items()},
                "worker_in_flight": {n: w.get("in_flight") for n, w in workers.items()},
                "worker_restarts": {n: w.get("restarts") for n, w in workers.items()},
                "rss_mb": round(rss / 2**20, 1),
            }
        )

    async def start_node(self) -> None:
        self.generation += 1
        node = _NodeProcess(self, self.generation)
        await node.start(timeout=60.0)
        self.node = node
        for i, f in self.active.items():
            await node.send({"t": "fault", "i": i, "on": True, "f": _json.encode(f)})
        if self.backlog:
            backlog, self.backlog = self.backlog, []
            await self._send_events(backlog)

    def read_runs(self) -> None:
        """Account the runs the node processes appended since the last call."""
        if self._runs_file is None:
            try:
                self._runs_file = open(self.runs_path, "rb")  # noqa: SIM115 - closed in run()
            except FileNotFoundError:
                return
        chunk = self._runs_file.read()
        if not chunk:
            return
        data = self._runs_rest + chunk
        cut = data.rfind(b"\n") + 1
        self._runs_rest = data[cut:]
        if cut:
            self.ledger.add_runs(_runs_decoder.decode_lines(data[:cut]))

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

    def _event(self, o: Offer, source: str) -> Event[Any]:
        event = Event.new(
            o.type,
            o.data,
            source=source,
            id=o.id,
            datacontenttype=o.content_type if o.data is not None else None,
            key=o.key,
            extensions={POISON_EXTENSION: o.poison} if o.poison else None,
        )
        if o.deadline is not None:
            event.deadline = int((time.time() + o.deadline) * 1000)
        return event

    async def _send_events(self, events: list[Event[Any]]) -> None:
        async with self._send_lock:
            if self.transport == "memory":
                node = self.node
                if node is None or not node.alive:
                    self.backlog.extend(events)
                    return
                try:
                    await node.send({"t": "submit", "e": [encode_event(e) for e in events]})
                except (ConnectionError, OSError):
                    self.backlog.extend(events)
                    return
            else:
                delay = 0.05
                while True:
                    try:
                        await self.publisher.publish(events)
                        break
                    except (TimeoutError, CrosswireError, OSError) as exc:
                        if self.phase == "stopping":
                            self.notes.append(f"{len(events)} events not published: {exc}")
                            return
                        await asyncio.sleep(delay)
                        delay = min(1.0, delay * 2)
            self.sent += len(events)

    async def offer_loop(self, plan: TrafficPlan) -> None:
        source = "/crosswire/harness"
        batch = self.scenario.batch
        while not plan.done:
            now = time.monotonic() - self.t0_mono
            offers = plan.until(now)
            if offers:
                self.ledger.offer(offers)
                events = [self._event(o, source) for o in offers]
                for i in range(0, len(events), batch):
                    await self._send_events(events[i : i + batch])
            await asyncio.sleep(0.005)

    # -- faults -----------------------------------------------------------------------------

    def _mark(self, start: float, end: float, kind: str, text: str) -> None:
        self.markers.append({"t": round(start, 3), "end": round(end, 3), "kind": kind, "label": text})

    async def _at(self, t: float) -> None:
        delay = self.t0_mono + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _now(self) -> float:
        return time.monotonic() - self.t0_mono

    async def fault(self, index: int, f: Any, at: float) -> None:
        try:
            await self._fault(index, f, at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.notes.append(f"fault {label(f)} at {at:g}s failed: {type(exc).__name__}: {exc}")
            log.exception("fault %s failed", label(f))

    async def _fault(self, index: int, f: Any, at: float) -> None:
        await self._at(at)
        start = self._now()
        if isinstance(f, (HandlerError, HandlerLatency, HandlerHang)):
            self.active[index] = f
            if self.node is not None and self.node.alive:
                await self.node.send({"t": "fault", "i": index, "on": True, "f": _json.encode(f)})
            end = min(start + f.duration, self.scenario.duration)
            self._mark(start, end, _KINDS[type(f)], label(f))
            await self._at(at + f.duration)
            self.active.pop(index, None)
            if self.node is not None and self.node.alive:
                with contextlib.suppress(ConnectionError, OSError):
                    await self.node.send({"t": "fault", "i": index, "on": False})
        elif isinstance(f, WorkerFault):
            if self.node is not None and self.node.alive:
                await self.node.send({"t": "signal", "worker": f.worker, "signal": f.signal, "pause": f.pause})
            self._mark(start, start + (f.pause if f.signal == "SIGSTOP" else 0.0), "worker", label(f))
        elif isinstance(f, Broker) and self.cluster is not None:
            member = f.server % self.cluster.size
            if f.action == "kill":
                await self.cluster.kill(member)
            else:
                await self.cluster.stop(member)
            await asyncio.sleep(f.down)
            await self.cluster.start(member)
            self._mark(start, self._now(), "broker", label(f))
        elif isinstance(f, Broker):
            if self.server is None:
                self.notes.append("broker fault skipped: the harness did not start the broker (--nats given)")
                return
            if f.action == "kill":
                await self.server.kill()
            else:
                await self.server.stop()
            await asyncio.sleep(f.down)
            await self.server.start()
            self._mark(start, self._now(), "broker", label(f))
        elif isinstance(f, NodeFault):
            async with self._restart_lock:
                await self._node_fault(f, start)

    async def _node_fault(self, f: NodeFault, start: float) -> None:
        node = self.node
        if node is None:
            return
        if f.action == "kill":
            await node.kill()
        else:
            await node.terminate(timeout=float(self.scenario.node.get("drain_timeout", 30.0)) + 10)
        down_at = self._now()
        await asyncio.sleep(f.down)
        await self.start_node()
        self._mark(start, max(down_at, self._now()), "node", label(f))

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
                    tasks.append(asyncio.create_task(self.fault(i, f, at)))
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
            if self._runs_file is not None:
                self._runs_file.close()

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
            ready = node is not None and node.alive and not self.backlog
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
        led = self.ledger
        now_rel = time.time() - self.t0 if self.t0 else 0.0
        b = max(0, int(now_rel / led.bin) - 1)
        offered = led.offered_bins[b] / led.bin if b < len(led.offered_bins) else 0.0
        handled = led.handled_bins[b] / led.bin if b < len(led.handled_bins) else 0.0
        lat = led.latency_bins[b] if b < len(led.latency_bins) else []
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        sample = self.samples[-1] if self.samples else {}
        return {
            "phase": self.phase,
            "t": now_rel,
            "duration": self.scenario.duration,
            "offered_total": len(led.offers),
            "handled_total": led.handled_pairs,
            "offered_per_s": offered,
            "handled_per_s": handled,
            "p50_ms": None if p50 is None else p50 * 1000,
            "p99_ms": None if p99 is None else p99 * 1000,
            "queued": sample.get("queued", 0),
            "running": sample.get("running", 0),
            "backlog": sample.get("backlog", 0),
            "retried": sample.get("retried", 0),
            "dead_lettered": sample.get("dead_lettered", 0),
            "breakers": sample.get("breakers", {}),
            "credit": sample.get("credit", {}),
            "restarts": sample.get("worker_restarts", {}),
            "rss_mb": sample.get("rss_mb", 0.0),
            "node": self.generation,
            "node_alive": self.node is not None and self.node.alive,
            "faults": [m["label"] for m in self.markers if m["t"] <= now_rel <= max(m["end"], m["t"] + 1)],
            "unresolved": led.unresolved(),
        }


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


def write_json(report: dict[str, Any], path: str | Path, out: TextIO | None = None) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=1))
