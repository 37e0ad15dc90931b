"""A local multi-server NATS cluster with JetStream, for broker faults on a cluster.

``LocalCluster(workdir, size=3)`` runs ``size`` ``nats-server`` processes on
127.0.0.1 (client and route ports picked free, kept across restarts), each with its
own JetStream store, routed to each other. ``kill(i)``/``stop(i)`` and ``start(i)``
take one member down and bring it back on the same ports and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from pathlib import Path

__all__ = ["LocalCluster"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalCluster:
    def __init__(self, workdir: Path, size: int = 3, *, name: str = "harness") -> None:
        if size < 2:
            raise ValueError("a cluster needs at least 2 servers")
        self.workdir = workdir
        self.size = size
        self.name = name
        self.ports = [_free_port() for _ in range(size)]
        self.route_ports = [_free_port() for _ in range(size)]
        self.procs: list[asyncio.subprocess.Process | None] = [None] * size
        self._logs: list[Path] = [workdir / f"nats-{i}.log" for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    def _config(self, i: int) -> Path:
        store = self.workdir / f"nats-{i}"
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.route_ports) if j != i)
        text = "\n".join(
            [
                f"server_name: n{i}",
                "host: 127.0.0.1",
                f"port: {self.ports[i]}",
                f'jetstream {{ store_dir: "{store}" }}',
                f"cluster {{ name: {self.name}, listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}",
                "",
            ]
        )
        path = self.workdir / f"nats-{i}.conf"
        path.write_text(text)
        return path

    async def start(self, i: int | None = None) -> None:
        """Start member ``i`` (every member when ``None``) and wait until it accepts connections."""
        from crosswire.jetstream import find_nats_server

        members = range(self.size) if i is None else [i]
        binary = find_nats_server()
        for m in members:
            if self.procs[m] is not None and self.procs[m].returncode is None:  # type: ignore[union-attr]
                continue
            log = open(self._logs[m], "ab")  # noqa: SIM115, ASYNC230 - handed to the child
            self.procs[m] = await asyncio.create_subprocess_exec(
                binary, "-c", str(self._config(m)), stdout=log, stderr=log, start_new_session=True
            )
            log.close()
        for m in members:
            await self._wait_port(m)
        if i is None:
            await self._wait_jetstream()

    async def _wait_port(self, i: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.ports[i])
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"cluster member {i} did not accept connections: {self.log_tail(i)}")

    async def _wait_jetstream(self, timeout: float = 30.0) -> None:
        import nats

        deadline = time.monotonic() + timeout
        nc = await nats.connect(self.urls, connect_timeout=2)
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    await nc.jetstream().account_info()
                    return
                await asyncio.sleep(0.25)
        finally:
            await nc.close()
        raise RuntimeError("the cluster elected no JetStream leader in time")

    async def _signal(self, i: int, sig: signal.Signals) -> None:
        proc = self.procs[i]
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self.procs[i] = None

    async def kill(self, i: int) -> None:
        await self._signal(i, signal.SIGKILL)

    async def stop(self, i: int | None = None) -> None:
        for m in range(self.size) if i is None else [i]:
            await self._signal(m, signal.SIGTERM)

    def log_tail(self, i: int, lines: int = 10) -> str:
        try:
            return "\n".join(self._logs[i].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pids(self) -> list[int | None]:
        return [p.pid if p is not None and p.returncode is None else None for p in self.procs]

    def __del__(self) -> None:  # last resort: never leave servers behind
        for p in self.procs:
            if p is not None and p.returncode is None:
                with contextlib.suppress(ProcessLookupError, OSError):
                    os.kill(p.pid, signal.SIGKILL)
