"""The node's child process: started with its control channel, read until it exits,
stopped, terminated or killed; and the runs file it appends to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from .._tasks import first_of
from .accounting import Ledger
from .control import Channel
from .errors import HarnessError
from .scenario import Scenario

__all__ = ["NodeHost", "NodeProcess", "RunsFile"]

_runs_decoder = msgspec.json.Decoder(tuple[str, str, int, float, float, str, bool, str])


class NodeHost(Protocol):
    """What a node process needs of the harness that runs it."""

    @property
    def app_spec(self) -> str: ...
    @property
    def socket_path(self) -> str: ...
    @property
    def runs_path(self) -> Path: ...
    @property
    def transport(self) -> str: ...
    @property
    def nats_urls(self) -> Sequence[str]: ...
    @property
    def stream(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def replicas(self) -> int: ...
    @property
    def scenario(self) -> Scenario: ...
    @property
    def types(self) -> Iterable[str]: ...
    @property
    def node_log_level(self) -> str: ...
    @property
    def node_log(self) -> IO[str]: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def refusals(self) -> list[str]: ...

    def expect(self, node: NodeProcess) -> None: ...
    def on_hello(self, msg: dict[str, Any]) -> None: ...
    def on_stats(self, msg: dict[str, Any]) -> None: ...
    def log_tail(self, lines: int = 30) -> str: ...


class NodeProcess:
    """One node child process and its control channel."""

    def __init__(self, harness: NodeHost, generation: int) -> None:
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_of(self.ready.wait(), self.exited.wait()), timeout)
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


class RunsFile:
    """The runs the node processes append to ``path``, one JSON array a line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._rest = b""

    def read(self) -> list[tuple[str, str, int, float, float, str, bool, str]]:
        """The complete lines appended since the last call."""
        if self._file is None:
            try:
                self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
            except FileNotFoundError:
                return []
        chunk = self._file.read()
        if not chunk:
            return []
        data = self._rest + chunk
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        return _runs_decoder.decode_lines(data[:cut]) if cut else []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
